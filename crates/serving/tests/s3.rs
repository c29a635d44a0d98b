//! `s3://` (and `gs://`, through GCS's S3-like XML API) storage URIs
//! against a real S3 implementation: moto's server
//! (from the test venv), started on loopback per test, with IAM
//! authentication switched on once the fixtures are in place, so wrong
//! credentials are refused as S3 refuses them. Fixtures are written with
//! boto3, not with the client under test.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxflow_serving::storage::{Fetched, GcsConfig, S3Config, Storage};
use oxflow_serving::test_models::{tar_gz, zip_bytes};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The test venv's Python (the test command sets OXFLOW_TEST_PYTHON).
fn python() -> PathBuf {
    let p = std::env::var_os("OXFLOW_TEST_PYTHON")
        .map(PathBuf::from)
        .expect(
            "OXFLOW_TEST_PYTHON must point at a Python with moto[server] installed \
         (tests/requirements.txt); run the tests through scripts/test",
        );
    assert!(
        p.exists(),
        "OXFLOW_TEST_PYTHON={} does not exist",
        p.display()
    );
    p
}

/// Creates the IAM user whose keys the tests use, buckets and objects, and
/// switches authentication on; reads a JSON spec on stdin.
const FIXTURES: &str = r#"
import json, sys, urllib.request
import boto3
from botocore.config import Config

endpoint = sys.argv[1]
spec = json.load(sys.stdin)
key = spec.get("key") or ["testing", "testing"]
out = {}

def client(service):
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=key[0], aws_secret_access_key=key[1],
        config=Config(s3={"addressing_style": "path"}),
    )

if spec.get("create_user"):
    iam = client("iam")
    iam.create_user(UserName="oxflow")
    iam.put_user_policy(
        UserName="oxflow", PolicyName="s3",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
    )
    k = iam.create_access_key(UserName="oxflow")["AccessKey"]
    key = out["key"] = [k["AccessKeyId"], k["SecretAccessKey"]]
s3 = client("s3")
for bucket in spec.get("buckets", []):
    s3.create_bucket(Bucket=bucket)
for bucket in spec.get("public", []):
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
for o in spec.get("put", []):
    acl = "public-read" if o["bucket"] in spec.get("public", []) else "private"
    s3.put_object(Bucket=o["bucket"], Key=o["key"], Body=bytes.fromhex(o["hex"]), ACL=acl)
for o in spec.get("delete", []):
    s3.delete_object(Bucket=o["bucket"], Key=o["key"])
if spec.get("enforce_auth"):
    request = urllib.request.Request(
        endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"},  # Flask drops form bodies from request.data
    )
    urllib.request.urlopen(request).read()
print(json.dumps(out))
"#;

/// A moto server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    /// The access key of the IAM user allowed `s3:*`.
    key: (String, String),
}

impl Moto {
    /// Starts moto, creates an IAM user allowed `s3:*`, `buckets` and
    /// `objects` (bucket, key, bytes). A bucket named `public` and its
    /// objects are world-readable (public-read ACLs). Until
    /// [`Moto::require_auth`], moto takes any signature.
    fn start(buckets: &[&str], objects: &[(&str, &str, &[u8])]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("cannot start moto.server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = || std::fs::read_to_string(log.path()).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("moto.server exited ({status}) before listening:\n{}", log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("moto.server did not listen within 60 s:\n{}", log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            key: (String::new(), String::new()),
        };
        let put: Vec<Value> = objects
            .iter()
            .map(|(bucket, key, bytes)| json!({"bucket": bucket, "key": key, "hex": hex::encode(bytes)}))
            .collect();
        let out = moto.fixtures(json!({
            "create_user": true,
            "buckets": buckets,
            "public": buckets.iter().filter(|b| **b == "public").collect::<Vec<_>>(),
            "put": put,
        }));
        let key = &out["key"];
        moto.key = (
            key[0].as_str().unwrap().into(),
            key[1].as_str().unwrap().into(),
        );
        moto
    }

    fn fixtures(&self, mut spec: Value) -> Value {
        if !self.key.0.is_empty() {
            spec["key"] = json!([self.key.0, self.key.1]);
        }
        let mut child = Command::new(python())
            .args(["-c", FIXTURES, &self.endpoint])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "fixtures failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// From now on, only requests signed with the IAM user's key pass.
    fn require_auth(&self) {
        self.fixtures(json!({"enforce_auth": true}));
    }

    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.fixtures(json!({"put": [{"bucket": bucket, "key": key, "hex": hex::encode(bytes)}]}));
    }

    fn delete(&self, bucket: &str, key: &str) {
        self.fixtures(json!({"delete": [{"bucket": bucket, "key": key}]}));
    }

    fn config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            access_key_id: Some(self.key.0.clone()),
            secret_access_key: Some(self.key.1.clone()),
            allow_http: true,
            ..S3Config::default()
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The digest of a prefix: SHA-256 of its `sha256sum` manifest.
fn manifest_digest(files: &[(&str, &[u8])]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|(path, bytes)| format!("{}  {path}\n", sha256(bytes)))
        .collect();
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    sha256(lines.concat().as_bytes())
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[tokio::test]
async fn objects_prefixes_archives_and_errors() {
    let model_tgz = tar_gz(&[("model.bst", b"tree"), ("sub/extra.txt", b"x")]);
    let model_zip = zip_bytes(&[("model.onnx", b"onnx"), ("1/config.txt", b"c")]);
    let moto = Moto::start(
        &["models", "empty", "public"],
        &[
            ("public", "iris/model.joblib", b"public joblib"),
            ("models", "sklearn/iris/model.joblib", b"joblib bytes"),
            ("models", "xgb/model.bst", b"bst"),
            ("models", "xgb/sub/config.json", b"{}"),
            ("models", "xgb/sub/deeper/w.bin", b"w"),
            // A directory marker and an empty object: skipped, as KServe does.
            ("models", "xgb/sub/", b""),
            ("models", "xgb/empty.txt", b""),
            // Shares the key's text but not its prefix `xgb/`.
            ("models", "xgb-v2/model.bst", b"other"),
            ("models", "archives/m.tar.gz", &model_tgz),
            ("models", "archives/m.zip", &model_zip),
            ("models", "lone/model.tgz", &model_tgz),
        ],
    );
    let home = tempfile::tempdir().unwrap();

    // No credentials: unsigned requests (KServe's awsAnonymousCredential),
    // answered for a public bucket and refused for a private one. moto 5.2
    // answers unsigned requests with a 500 once IAM authentication is on,
    // so this comes first.
    let anonymous = Storage::new(home.path()).with_s3(S3Config {
        access_key_id: None,
        secret_access_key: None,
        ..moto.config()
    });
    let public = anonymous
        .fetch("s3://public/iris", "default")
        .await
        .unwrap();
    assert_eq!(files(&public.path), ["model.joblib"]);
    let public = anonymous
        .fetch("s3://public/iris/model.joblib", "default")
        .await
        .unwrap();
    assert_eq!(std::fs::read(&public.path).unwrap(), b"public joblib");
    let e = anonymous
        .fetch("s3://models/xgb", "default")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("access denied"), "{e}");
    assert!(e.contains("the request was anonymous"), "{e}");
    moto.require_auth();
    let storage = Storage::new(home.path()).with_s3(moto.config());

    // One object: the file itself, its SHA-256.
    let one = storage
        .fetch("s3://models/sklearn/iris/model.joblib", "default")
        .await
        .unwrap();
    assert_eq!(one.path.file_name().unwrap(), "model.joblib");
    assert_eq!(std::fs::read(&one.path).unwrap(), b"joblib bytes");
    assert_eq!(one.digest, Some(sha256(b"joblib bytes")));

    // A prefix: every non-empty object under `xgb/`, paths kept.
    let xgb_files: [(&str, &[u8]); 3] = [
        ("model.bst", b"bst"),
        ("sub/config.json", b"{}"),
        ("sub/deeper/w.bin", b"w"),
    ];
    for uri in ["s3://models/xgb", "s3://models/xgb/"] {
        let prefix = storage.fetch(uri, "default").await.unwrap();
        assert!(prefix.path.is_dir(), "{uri}");
        assert_eq!(
            files(&prefix.path),
            ["model.bst", "sub/config.json", "sub/deeper/w.bin"],
            "{uri}"
        );
        for (name, bytes) in xgb_files {
            assert_eq!(std::fs::read(prefix.path.join(name)).unwrap(), bytes);
        }
        assert_eq!(prefix.digest, Some(manifest_digest(&xgb_files)), "{uri}");
    }

    // Archives, named or alone under a prefix, are unpacked.
    for (uri, archive, expected) in [
        (
            "s3://models/archives/m.tar.gz",
            &model_tgz,
            ["model.bst", "sub/extra.txt"],
        ),
        (
            "s3://models/archives/m.zip",
            &model_zip,
            ["1/config.txt", "model.onnx"],
        ),
        (
            "s3://models/lone",
            &model_tgz,
            ["model.bst", "sub/extra.txt"],
        ),
    ] {
        let unpacked = storage.fetch(uri, "default").await.unwrap();
        assert_eq!(files(&unpacked.path), expected, "{uri}");
        assert_eq!(unpacked.digest, Some(sha256(archive)), "{uri}");
    }
    let tgz = storage
        .fetch("s3://models/archives/m.tar.gz", "default")
        .await
        .unwrap();
    assert_eq!(std::fs::read(tgz.path.join("model.bst")).unwrap(), b"tree");

    // What is not there, and malformed URIs: errors that name the URI.
    let cases = [
        ("s3://nobucket/model", "bucket nobucket does not exist"),
        ("s3://nobucket/model", "404 NoSuchBucket"),
        (
            "s3://models/nothing/here",
            "no objects under s3://models/nothing/here",
        ),
        ("s3://empty", "no objects under s3://empty/"),
        ("s3://models/xgb/empty.txt", "is an empty object (skipped"),
        ("s3:///key", "expected s3://BUCKET/KEY-OR-PREFIX"),
    ];
    for (uri, expected) in cases {
        let e = storage.fetch(uri, "default").await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("storageUri {uri}: ")), "{e}");
        assert!(e.contains(expected), "{uri}: {e}");
    }

    // Wrong or missing credentials: refused, with S3's status and code.
    let wrong_key = S3Config {
        access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
        ..moto.config()
    };
    let wrong_secret = S3Config {
        secret_access_key: Some("not-the-secret".into()),
        ..moto.config()
    };
    let plain_http_refused = S3Config {
        allow_http: false,
        ..moto.config()
    };
    let uri = "s3://models/xgb";
    let cases: [(S3Config, &[&str]); 3] = [
        (
            wrong_key,
            &["access denied", "403 Forbidden, InvalidAccessKeyId"],
        ),
        (
            wrong_secret,
            &["access denied", "403 Forbidden, SignatureDoesNotMatch"],
        ),
        (plain_http_refused, &["plain HTTP", "allow_http"]),
    ];
    for (config, expected) in cases {
        let other_home = tempfile::tempdir().unwrap();
        let e = Storage::new(other_home.path())
            .with_s3(config)
            .fetch(uri, "default")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("storageUri {uri}: ")), "{e}");
        for expected in expected {
            assert!(e.contains(expected), "{expected}: {e}");
        }
        assert!(!e.contains(&moto.key.1), "the secret leaked: {e}");
    }
}

#[tokio::test]
async fn cached_objects_are_revalidated_and_used_offline() {
    let moto = Moto::start(
        &["models"],
        &[("models", "m/a.bin", b"a1"), ("models", "m/b/c.bin", b"c1")],
    );
    moto.require_auth();
    let home = tempfile::tempdir().unwrap();
    let storage = Storage::new(home.path()).with_s3(moto.config());
    let uri = "s3://models/m";
    let first = storage.fetch(uri, "default").await.unwrap();
    assert_eq!(
        first.digest,
        Some(manifest_digest(&[("a.bin", b"a1"), ("b/c.bin", b"c1")]))
    );
    let record_path = first.path.parent().unwrap().join("oxflow-cache.json");
    let record: Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    assert_eq!(record["uri"], uri);
    let keys: Vec<&str> = record["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["m/a.bin", "m/b/c.bin"]);
    for object in record["objects"].as_array().unwrap() {
        assert!(object["etag"].is_string(), "{object}");
        assert_eq!(object["size"], 2);
    }
    let inodes = |f: &Fetched| (inode(&f.path.join("a.bin")), inode(&f.path.join("b/c.bin")));
    let before = inodes(&first);

    // Unchanged: listed again, nothing downloaded (same files, same record).
    let again = storage.fetch(uri, "default").await.unwrap();
    assert_eq!(again, first);
    assert_eq!(inodes(&again), before);
    let record_again: Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    assert_eq!(record_again, record);

    // One object changed, one added: those are downloaded, the other kept.
    moto.put("models", "m/a.bin", b"a2");
    moto.put("models", "m/new.txt", b"new");
    let changed = storage.fetch(uri, "default").await.unwrap();
    assert_eq!(std::fs::read(changed.path.join("a.bin")).unwrap(), b"a2");
    assert_eq!(std::fs::read(changed.path.join("new.txt")).unwrap(), b"new");
    assert_ne!(inode(&changed.path.join("a.bin")), before.0);
    assert_eq!(inode(&changed.path.join("b/c.bin")), before.1);
    let expected = manifest_digest(&[("a.bin", b"a2"), ("b/c.bin", b"c1"), ("new.txt", b"new")]);
    assert_eq!(changed.digest, Some(expected));

    // A deleted object leaves the entry.
    moto.delete("models", "m/new.txt");
    let deleted = storage.fetch(uri, "default").await.unwrap();
    assert_eq!(files(&deleted.path), ["a.bin", "b/c.bin"]);

    // A single object is revalidated the same way.
    let single_uri = "s3://models/m/b/c.bin";
    let single = storage.fetch(single_uri, "default").await.unwrap();
    let single_inode = inode(&single.path);
    assert_eq!(storage.fetch(single_uri, "default").await.unwrap(), single);
    assert_eq!(inode(&single.path), single_inode);

    // The endpoint gone: cached copies serve; an uncached URI cannot.
    let endpoint = moto.endpoint.clone();
    let config = moto.config();
    drop(moto);
    let offline = Storage::new(home.path()).with_s3(config);
    let served = offline.fetch(uri, "default").await.unwrap();
    assert_eq!(served, deleted);
    assert_eq!(std::fs::read(served.path.join("a.bin")).unwrap(), b"a2");
    assert_eq!(offline.fetch(single_uri, "default").await.unwrap(), single);
    let e = offline
        .fetch("s3://models/other", "default")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("cannot reach the S3 endpoint {endpoint}")),
        "{e}"
    );
}

/// `gs://` reads through GCS's XML API, which lists and reads objects as
/// S3 does; moto stands at the endpoint STORAGE_EMULATOR_HOST names.
/// Without credentials the requests are anonymous, as KServe falls back to
/// for public buckets (`gs://kfserving-examples`).
#[tokio::test]
async fn gs_uris_read_public_buckets_anonymously() {
    let moto = Moto::start(
        &["public", "private"],
        &[
            ("public", "models/iris/model.joblib", b"gcs joblib"),
            ("public", "models/iris/meta/info.txt", b"info"),
            ("private", "m/model.bst", b"secret"),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let storage = Storage::new(home.path()).with_gcs(GcsConfig {
        endpoint: Some(moto.endpoint.clone()),
        ..GcsConfig::default()
    });
    // One object.
    let one = storage
        .fetch("gs://public/models/iris/model.joblib", "default")
        .await
        .unwrap();
    assert_eq!(std::fs::read(&one.path).unwrap(), b"gcs joblib");
    assert_eq!(one.digest, Some(sha256(b"gcs joblib")));
    // A prefix: every object at its path under it.
    let all = storage
        .fetch("gs://public/models/iris", "default")
        .await
        .unwrap();
    assert_eq!(files(&all.path), ["meta/info.txt", "model.joblib"]);
    assert_eq!(
        all.digest,
        Some(manifest_digest(&[
            ("model.joblib", b"gcs joblib"),
            ("meta/info.txt", b"info")
        ]))
    );
    // Fetched again, unchanged: the same entry.
    let again = storage
        .fetch("gs://public/models/iris", "default")
        .await
        .unwrap();
    assert_eq!(again, all);
    // A private bucket refuses anonymous requests; the error says how to
    // give credentials.
    let e = storage
        .fetch("gs://private/m/model.bst", "default")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("access denied"), "{e}");
    assert!(e.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{e}");
    // Nothing there: named as a gs:// location.
    let e = storage
        .fetch("gs://public/nothing/", "default")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no objects under gs://public/nothing"), "{e}");
    // A credentials file that is not there is named.
    let e = Storage::new(home.path())
        .with_gcs(GcsConfig {
            endpoint: Some(moto.endpoint.clone()),
            credentials_file: Some(home.path().join("missing.json")),
            ..GcsConfig::default()
        })
        .fetch("gs://public/models/iris", "default")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json, which is not a file"), "{e}");
    // Unreachable: the cached copy serves.
    drop(moto);
    let offline = storage
        .fetch("gs://public/models/iris", "default")
        .await
        .unwrap();
    assert_eq!(offline, all);
}
