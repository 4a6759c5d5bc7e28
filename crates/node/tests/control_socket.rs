//! The control socket as other users of the machine see it: never wider
//! than 0600, and nothing but a socket replaced at its path.

use std::{
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use conclave_node::{control::server, control::ControlError, NodeConfig};

/// How long the socket is bound again and again while another thread
/// watches its path.
const WATCHED_FOR: std::time::Duration = std::time::Duration::from_secs(2);

// One thread binds (and runs the node); the watcher has the other core.
#[tokio::test(flavor = "current_thread")]
async fn the_socket_never_appears_with_a_mode_wider_than_0600() {
    let node = conclave_testkit::start(NodeConfig::loopback()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let done = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(std::sync::Barrier::new(2));
    // Every mode the path is seen with while it is a socket.
    let watcher = {
        let (path, done, watching) = (path.clone(), done.clone(), watching.clone());
        std::thread::spawn(move || {
            let mut wider = Vec::new();
            watching.wait();
            while !done.load(Ordering::Relaxed) {
                if let Ok(meta) = std::fs::symlink_metadata(&path) {
                    let mode = meta.permissions().mode() & 0o777;
                    if meta.file_type().is_socket() && mode != 0o600 {
                        wider.push(mode);
                    }
                }
            }
            wider
        })
    };
    watching.wait();
    // Long enough that the two threads surely run at the same time.
    let start = std::time::Instant::now();
    while start.elapsed() < WATCHED_FOR {
        let task = server::serve(node.clone(), &path).await.unwrap();
        task.abort();
        let _ = task.await;
        std::fs::remove_file(&path).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let wider = watcher.join().unwrap();
    assert!(
        wider.is_empty(),
        "seen {} time(s) with a wider mode, such as {:o}",
        wider.len(),
        wider[0]
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no staging folder is left behind"
    );
}

#[tokio::test]
async fn only_a_stale_socket_is_replaced() {
    let node = conclave_testkit::start(NodeConfig::loopback()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"keep me").unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    for path in [&file, &folder, &link] {
        match server::serve(node.clone(), path).await {
            Err(ControlError::NotASocket(shown)) => assert_eq!(shown, path.display().to_string()),
            other => panic!("{}: {:?}", path.display(), other.map(|_| ())),
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    assert!(folder.is_dir());
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());

    // A socket nobody serves (a crashed daemon's) is replaced; a served one
    // is not.
    let socket = dir.path().join("control.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let task = server::serve(node.clone(), &socket).await.unwrap();
    assert!(matches!(
        server::serve(node.clone(), &socket).await,
        Err(ControlError::InUse(_))
    ));
    task.abort();
    assert_only(dir.path(), &["control.sock", "file", "folder", "link"]);
}

fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, names);
}
