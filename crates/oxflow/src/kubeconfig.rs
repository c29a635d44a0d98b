//! The kubeconfig `oxflow up` writes to `<home>/kubeconfig`, so that
//! kubectl and the Kubeflow SDKs (`KatibClient`, `KServeClient`, the
//! `kubernetes` client) reach this server with its token:
//! `export KUBECONFIG=$(oxflow kubeconfig)`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Its file name in the data directory.
pub(crate) const FILE: &str = "kubeconfig";

/// The kubeconfig for a server at `server` (`https://HOST:PORT`) with
/// `token`, trusting `ca_pem`: one cluster, user and context, all named
/// `oxflow`, namespace `default`.
pub(crate) fn render(server: &str, token: &str, ca_pem: &str) -> String {
    // Both values are plain ASCII without quotes (a URL we built and a
    // token of printable characters); quoting them keeps YAML from reading
    // anything into them.
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: oxflow\n  cluster:\n    server: \"{server}\"\n\
         \x20   certificate-authority-data: {ca}\n\
         users:\n- name: oxflow\n  user:\n    token: \"{token}\"\n\
         contexts:\n- name: oxflow\n  context:\n    cluster: oxflow\n    user: oxflow\n    namespace: default\n\
         current-context: oxflow\npreferences: {{}}\n",
        server = server.replace('"', ""),
        token = token.replace('"', ""),
        ca = base64(ca_pem.as_bytes()),
    )
}

/// Writes the kubeconfig into `home` (mode 0600, replaced atomically, so a
/// client never reads half of it); returns its path.
pub(crate) fn write(home: &Path, server: &str, token: &str, ca_pem: &str) -> Result<PathBuf> {
    let path = home.join(FILE);
    let tmp = home.join(format!(".{FILE}.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(render(server, token, ca_pem).as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Standard base64 with padding (kubeconfig's `*-data` fields).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_names_the_server_token_and_default_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "https://127.0.0.1:8080", "oxf_abc", "PEM").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("server: \"https://127.0.0.1:8080\""),
            "{text}"
        );
        assert!(
            text.contains("certificate-authority-data: UEVN\n"),
            "{text}"
        );
        assert!(text.contains("token: \"oxf_abc\""), "{text}");
        assert!(text.contains("current-context: oxflow"), "{text}");
        assert!(text.contains("namespace: default"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn base64_pads_like_the_standard() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }
}
