use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

use super::*;
use crate::test_models::{tar_gz, zip_bytes};

/// A file server with ETags that counts full downloads.
#[derive(Clone, Default)]
struct Files {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    downloads: Arc<AtomicUsize>,
}

async fn serve_file(
    State(f): State<Files>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let Some(bytes) = f.files.lock().unwrap().get(&name).cloned() else {
        return (StatusCode::NOT_FOUND, HeaderMap::new(), Vec::new());
    };
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..16]);
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, etag.parse().unwrap());
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, out, Vec::new());
    }
    f.downloads.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, out, bytes)
}

async fn file_server(files: Files) -> (String, tokio::sync::oneshot::Sender<()>) {
    let app = axum::Router::new()
        .route("/{name}", axum::routing::get(serve_file))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{addr}"), tx)
}

#[tokio::test]
async fn local_file_and_pvc_uris_resolve_in_place() {
    let home = tempfile::tempdir().unwrap();
    let storage = Storage::new(home.path());
    let model = home.path().join("m.json");
    std::fs::write(&model, b"{}").unwrap();
    let p = model.display().to_string();
    assert_eq!(storage.fetch(&p, "default").await.unwrap().path, model);
    assert_eq!(
        storage
            .fetch(&format!("file://{p}"), "default")
            .await
            .unwrap()
            .path,
        model
    );
    let vol = home.path().join("volumes/team-a/models/iris");
    std::fs::create_dir_all(&vol).unwrap();
    assert_eq!(
        storage
            .fetch("pvc://models/iris", "team-a")
            .await
            .unwrap()
            .path,
        vol
    );
    let cases = [
        ("pvc://models/../../x", "without '..'"),
        ("pvc://models/missing", "does not exist"),
        ("hf://org/model", "the hf:// scheme is not supported"),
        ("gs:///model", "expected gs://BUCKET/KEY-OR-PREFIX"),
        ("/no/such/dir", "/no/such/dir does not exist"),
    ];
    for (uri, expected) in cases {
        let e = storage.fetch(uri, "team-a").await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("storageUri {uri}")), "{e}");
        assert!(e.contains(expected), "{uri}: {e}");
    }
}

/// Under `oxflow up`, `pvc://NAME` is the namespace's claim NAME: bound
/// (first, if pending) to its directory; a missing claim is named.
#[tokio::test]
async fn pvc_uris_go_through_the_namespaces_claims() {
    let home = tempfile::tempdir().unwrap();
    let store = oxflow_store::Store::open_in_dir(home.path()).await.unwrap();
    let resources = oxflow_resources::Resources::new(
        store,
        oxflow_resources::Registry::new(oxflow_resources::builtin::kinds()),
    );
    let volumes = oxflow_volumes::LocalVolumes::new(resources.clone(), home.path().join("volumes"));
    let storage = Storage::new(home.path()).with_volumes(volumes);
    // A directory with no claim behind it is not a volume.
    std::fs::create_dir_all(home.path().join("volumes/team-a/stray/iris")).unwrap();
    let e = storage
        .fetch("pvc://stray/iris", "team-a")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PersistentVolumeClaim \"stray\" does not exist in namespace team-a"),
        "{e}"
    );
    // A claim written through the API and not bound yet is bound first.
    resources
        .create(
            &oxflow_resources::builtin::PERSISTENT_VOLUME_CLAIM,
            Some("team-a"),
            serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "models"},
                "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}}),
            &Default::default(),
        )
        .await
        .unwrap();
    let e = storage
        .fetch("pvc://models/iris", "team-a")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    let dir = home.path().join("volumes/team-a/models/iris");
    assert!(home.path().join("volumes/team-a/models").is_dir(), "bound");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(
        storage
            .fetch("pvc://models/iris", "team-a")
            .await
            .unwrap()
            .path,
        dir
    );
    // Another namespace's claim of that name is another claim.
    assert!(storage.fetch("pvc://models/iris", "team-b").await.is_err());
}

#[tokio::test]
async fn confined_storage_reads_local_paths_only_under_its_roots() {
    let home = tempfile::tempdir().unwrap();
    let extra = tempfile::tempdir().unwrap();
    let h = home.path();
    let storage =
        Storage::new(h).with_local_roots(LocalRoots::for_server(h, &[extra.path().to_path_buf()]));
    let roots = format!(
        "{}, {}, {}",
        h.join("models").display(),
        h.join("volumes").display(),
        extra.path().display()
    );
    // Inside: <home>/models, a pvc:// volume, an extra root; canonical paths come back.
    std::fs::create_dir_all(h.join("models/iris")).unwrap();
    std::fs::write(h.join("models/iris/model.json"), b"{}").unwrap();
    std::fs::create_dir_all(h.join("volumes/team-a/claim/m")).unwrap();
    std::fs::write(extra.path().join("model.json"), b"{}").unwrap();
    let real = |p: &std::path::Path| std::fs::canonicalize(p).unwrap();
    let ok = [
        (
            format!("{}", h.join("models/iris").display()),
            real(&h.join("models/iris")),
        ),
        (
            format!("file://{}", h.join("models/iris/model.json").display()),
            real(&h.join("models/iris/model.json")),
        ),
        (
            "pvc://claim/m".to_string(),
            real(&h.join("volumes/team-a/claim/m")),
        ),
        (
            format!("{}", extra.path().join("model.json").display()),
            real(&extra.path().join("model.json")),
        ),
    ];
    for (uri, path) in ok {
        assert_eq!(
            storage.fetch(&uri, "team-a").await.unwrap().path,
            path,
            "{uri}"
        );
    }
    // Outside: host files, `..` out of a root, a symlink out of a root or a
    // volume, the data directory itself; missing files outside say the
    // same (whether they exist is not told).
    std::os::unix::fs::symlink("/etc", h.join("models/etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", h.join("volumes/team-a/claim/model.json")).unwrap();
    let outside = [
        "/etc/passwd".to_string(),
        "file:///etc/passwd".to_string(),
        "/etc/no-such-file".to_string(),
        format!("{}/models/../../../../../../etc/passwd", h.display()),
        format!("{}/models/etc/passwd", h.display()),
        "pvc://claim/model.json".to_string(),
        format!("{}/oxflow.db", h.display()),
        "etc/passwd".to_string(),
    ];
    for uri in outside {
        let e = storage.fetch(&uri, "team-a").await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("storageUri {uri}: ")), "{e}");
        assert!(
            e.contains(&format!("is outside the directories models may be read from ({roots}); put the model under one of them, or start `oxflow up` with --model-root DIR")),
            "{uri}: {e}"
        );
    }
    // A missing path inside a root is just missing.
    let e = storage
        .fetch(&format!("{}/models/nope", h.display()), "team-a")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("/models/nope does not exist"), "{e}");
    // `pvc://..` cannot name the volumes directory's parent.
    let e = storage
        .fetch("pvc://../x", "team-a")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("without '..'"), "{e}");
    // Unconfined storage (`oxflow serve`) reads what the operator named.
    assert!(Storage::new(h).fetch("/etc/passwd", "team-a").await.is_ok());
}

#[tokio::test]
async fn downloads_are_cached_revalidated_and_used_offline() {
    let home = tempfile::tempdir().unwrap();
    let storage = Storage::new(home.path());
    let files = Files::default();
    files
        .files
        .lock()
        .unwrap()
        .insert("model.json".into(), b"{\"v\":1}".to_vec());
    let (base, stop) = file_server(files.clone()).await;
    let uri = format!("{base}/model.json");
    let first = storage.fetch(&uri, "default").await.unwrap();
    assert_eq!(std::fs::read(&first.path).unwrap(), b"{\"v\":1}");
    assert_eq!(first.path.file_name().unwrap(), "model.json");
    assert_eq!(
        first.digest.as_deref(),
        Some(hex::encode(Sha256::digest(b"{\"v\":1}")).as_str())
    );
    // Unchanged: a 304, no second download.
    let again = storage.fetch(&uri, "default").await.unwrap();
    assert_eq!(again, first);
    assert_eq!(files.downloads.load(Ordering::SeqCst), 1);
    // Changed on the server: downloaded again.
    files
        .files
        .lock()
        .unwrap()
        .insert("model.json".into(), b"{\"v\":2}".to_vec());
    let changed = storage.fetch(&uri, "default").await.unwrap();
    assert_eq!(std::fs::read(&changed.path).unwrap(), b"{\"v\":2}");
    assert_eq!(files.downloads.load(Ordering::SeqCst), 2);
    // Missing on the server: an error naming the status.
    let e = storage
        .fetch(&format!("{base}/nope.bin"), "default")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("download failed: the server answered 404"),
        "{e}"
    );
    // Server gone: the cached copy still serves.
    stop.send(()).unwrap();
    let offline = Storage::new(home.path());
    let mut result = offline.fetch(&uri, "default").await;
    for _ in 0..50 {
        // The server stops accepting asynchronously; until then it may still answer.
        if result.as_ref().is_ok_and(|f| f.path == changed.path) {
            break;
        }
        result = offline.fetch(&uri, "default").await;
    }
    assert_eq!(std::fs::read(result.unwrap().path).unwrap(), b"{\"v\":2}");
}

#[tokio::test]
async fn archives_are_unpacked_and_escapes_refused() {
    let home = tempfile::tempdir().unwrap();
    let storage = Storage::new(home.path());
    let files = Files::default();
    {
        let mut f = files.files.lock().unwrap();
        f.insert(
            "m.tar.gz".into(),
            tar_gz(&[("model.bst", b"tree"), ("sub/extra.txt", b"x")]),
        );
        f.insert(
            "m.zip".into(),
            zip_bytes(&[("model.onnx", b"onnx"), ("1/config.txt", b"c")]),
        );
        f.insert("evil.zip".into(), zip_bytes(&[("../../escape.txt", b"no")]));
        f.insert("broken.tgz".into(), b"not gzip".to_vec());
    }
    let (base, _stop) = file_server(files).await;
    let tgz = storage
        .fetch(&format!("{base}/m.tar.gz"), "default")
        .await
        .unwrap();
    assert!(tgz.path.is_dir());
    assert_eq!(std::fs::read(tgz.path.join("model.bst")).unwrap(), b"tree");
    assert_eq!(std::fs::read(tgz.path.join("sub/extra.txt")).unwrap(), b"x");
    let zip = storage
        .fetch(&format!("{base}/m.zip"), "default")
        .await
        .unwrap();
    assert_eq!(std::fs::read(zip.path.join("model.onnx")).unwrap(), b"onnx");
    assert_eq!(std::fs::read(zip.path.join("1/config.txt")).unwrap(), b"c");
    let e = storage
        .fetch(&format!("{base}/evil.zip"), "default")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("points outside the archive"), "{e}");
    assert!(!home.path().join("escape.txt").exists());
    let e = storage
        .fetch(&format!("{base}/broken.tgz"), "default")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("tar archive"), "{e}");
}

#[test]
fn file_names_and_archive_kinds() {
    assert_eq!(file_name("https://h/a/model.joblib?sig=1"), "model.joblib");
    assert_eq!(file_name("https://h/"), "model");
    assert_eq!(archive_kind("M.TGZ"), Some(Archive::TarGz));
    assert_eq!(archive_kind("m.tar"), Some(Archive::Tar));
    assert_eq!(archive_kind("m.zip"), Some(Archive::Zip));
    assert_eq!(archive_kind("model.json"), None);
}
