//! `pull`, from a real registry: Debian's `docker-registry` (the CNCF
//! distribution registry), started for each test on a free port of
//! 127.0.0.1, where `skopeo` pushes test images. Plain HTTP: a
//! registry on this machine needs no `--insecure`.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use testkit::{eventually, TempDir};

use super::fixtures::{self, Change};
use super::tincan_in;

/// What the image's top layer writes.
const SOMEFILE: &str = "pulled from a registry\n";

/// A registry of one test's own, killed when dropped.
struct Registry {
    process: Child,
    port: u16,
    dir: TempDir,
}

impl Registry {
    fn start() -> Registry {
        // A port nobody uses now: the kernel picks it for a listener
        // that goes at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port();
        let dir = TempDir::new();
        let config = dir.path().join("config.yml");
        let yaml = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        fs::write(&config, yaml).expect("write the registry's config");
        let log = fs::File::create(dir.path().join("log")).expect("log");
        let process = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry (is it installed?)");
        let mut registry = Registry { process, port, dir };
        let ready = eventually(|| answers(port));
        if !ready || registry.process.try_wait().unwrap().is_some() {
            let log = fs::read_to_string(registry.dir.path().join("log"));
            panic!("docker-registry did not start: {}", log.unwrap());
        }
        registry
    }

    /// `127.0.0.1:PORT/name`.
    fn name(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.port)
    }

    /// Push an image of two layers (the test root file system, then
    /// `/somefile`) as `team/app:1`; return its manifest's digest.
    fn push(&self, scratch: &Path) -> String {
        let top: &[Change] = &[Change::Write("/somefile", SOMEFILE)];
        let layout = fixtures::oci_layout(scratch, "1", &[top]);
        let digest_file = scratch.join("digest");
        fixtures::skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--digestfile",
            digest_file.to_str().unwrap(),
            &format!("oci:{}:1", layout.display()),
            &format!("docker://{}", self.name("team/app:1")),
        ]);
        fs::read_to_string(digest_file).expect("read the digest")
    }

    /// Where the registry keeps a blob (a manifest is one too).
    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let blobs = "storage/docker/registry/v2/blobs/sha256";
        self.dir
            .path()
            .join(blobs)
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The digests of the layers of the manifest `digest`, bottom first.
    fn layers(&self, digest: &str) -> Vec<String> {
        let raw = fs::read(self.blob(digest)).expect("read the manifest");
        let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let layers = manifest["layers"].as_array().expect("layers");
        layers
            .iter()
            .map(|l| l["digest"].as_str().unwrap().into())
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.process.kill().ok();
        self.process.wait().ok();
    }
}

/// Whether a registry answers `GET /v2/` on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut answer = String::new();
    stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .and_then(|()| stream.read_to_string(&mut answer))
        .is_ok_and(|_| answer.starts_with("HTTP/1.0 200"))
}

#[test]
fn a_pulled_image_runs() {
    let (registry, scratch, state) =
        (Registry::start(), TempDir::new(), TempDir::new());
    registry.push(scratch.path());
    let name = registry.name("team/app:1");
    let pulled = tincan_in(state.path()).args(["pull", &name]).run();
    pulled.expect_status(0);
    assert!(
        pulled.stdout.starts_with(&format!("{name}: sha256:")),
        "{pulled}"
    );
    let summary = format!("pulled {name}: 2 layers (2 new), ");
    assert!(pulled.error_line().starts_with(&summary), "{pulled}");
    let run = tincan_in(state.path())
        .args(["run", "--rm", &name, "cat", "/somefile"])
        .run();
    run.expect_status(0);
    assert_eq!(run.stdout, SOMEFILE);
}

#[test]
fn pulling_again_downloads_nothing() {
    let (registry, scratch, state) =
        (Registry::start(), TempDir::new(), TempDir::new());
    registry.push(scratch.path());
    let name = registry.name("team/app:1");
    let first = tincan_in(state.path()).args(["pull", &name]).run();
    first.expect_status(0);
    let again = tincan_in(state.path()).args(["pull", &name]).run();
    again.expect_status(0);
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(
        again.error_line(),
        format!("pulled {name}: 2 layers (0 new), 0B downloaded")
    );
}

#[test]
fn a_terminal_shows_each_layer_as_docker_pull_does() {
    let (registry, scratch, state) =
        (Registry::start(), TempDir::new(), TempDir::new());
    let digest = registry.push(scratch.path());
    let top = registry.layers(&digest)[1].clone();
    let short = &top["sha256:".len()..][..12];
    let name = registry.name("team/app:1");
    let (first, _) = tincan_in(state.path())
        .args(["pull", &name])
        .env("TERM", "xterm")
        .run_on_terminal();
    first.expect_status(0);
    assert!(
        first.stdout.contains(&format!("{short}: Pull complete")),
        "{first}"
    );
    let (again, _) = tincan_in(state.path())
        .args(["pull", &name])
        .env("TERM", "xterm")
        .run_on_terminal();
    again.expect_status(0);
    assert!(
        again.stdout.contains(&format!("{short}: Already exists")),
        "{again}"
    );
    assert!(!again.stdout.contains("Downloading"), "{again}");
}

#[test]
fn an_image_can_be_pulled_by_digest() {
    let (registry, scratch, state) =
        (Registry::start(), TempDir::new(), TempDir::new());
    let digest = registry.push(scratch.path());
    let name = registry.name(&format!("team/app@{digest}"));
    let pulled = tincan_in(state.path()).args(["pull", &name]).run();
    pulled.expect_status(0);
    // The store files an image under a tag: `latest`, when none is given.
    let run = tincan_in(state.path())
        .args([
            "run",
            "--rm",
            &registry.name("team/app"),
            "cat",
            "/somefile",
        ])
        .run();
    assert_eq!(run.stdout, SOMEFILE);
    // A digest the registry does not have is a manifest it does not know.
    let unknown = registry.name(&format!("team/app@sha256:{}", "0".repeat(64)));
    let failed = tincan_in(state.path()).args(["pull", &unknown]).run();
    failed.expect_status(125);
    assert!(
        failed
            .error_line()
            .ends_with("manifest unknown (404 Not Found)"),
        "{failed}"
    );
}

#[test]
fn a_missing_tag_fails_in_one_line() {
    let (registry, scratch, state) =
        (Registry::start(), TempDir::new(), TempDir::new());
    registry.push(scratch.path());
    let name = registry.name("team/app:2");
    let pulled = tincan_in(state.path()).args(["pull", &name]).run();
    pulled.expect_status(125);
    assert_eq!(
        pulled.error_line(),
        format!(
            "{}: pull {name}: manifest 2: manifest unknown (404 Not Found)",
            env!("CARGO_PKG_NAME")
        )
    );
}

#[test]
fn a_corrupted_blob_is_refused_and_nothing_is_kept() {
    let (registry, scratch, state) =
        (Registry::start(), TempDir::new(), TempDir::new());
    let digest = registry.push(scratch.path());
    // Other bytes, as many: only the hash can tell.
    let bottom = registry.layers(&digest)[0].clone();
    let data = registry.blob(&bottom);
    let bytes: Vec<u8> = fs::read(&data).unwrap().iter().map(|b| !b).collect();
    fs::write(&data, bytes).unwrap();
    let name = registry.name("team/app:1");
    let pulled = tincan_in(state.path()).args(["pull", &name]).run();
    pulled.expect_status(125);
    let said = format!("blob {bottom}: its content hashes to sha256:");
    assert!(pulled.error_line().contains(&said), "{pulled}");
    let listed = tincan_in(state.path()).args(["image", "ls"]).run();
    assert_eq!(listed.stdout.lines().count(), 1, "{listed}");
    for dir in ["images/tmp", "images/layers", "images/configs"] {
        let entries = fs::read_dir(state.path().join(dir)).unwrap().count();
        assert_eq!(entries, 0, "{dir} is not empty");
    }
}

/// A registry that lies: it answers every manifest request with
/// `manifest`, and stops at nothing else. Its port; it serves until the
/// test's process ends.
fn lying_registry(manifest: Vec<u8>) -> u16 {
    use std::io::{BufRead, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut request).is_ok_and(|n| n > 2) {}
            let body: &[u8] = if request.contains("/manifests/") {
                &manifest
            } else {
                b"{}"
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: \
                 application/vnd.oci.image.manifest.v1+json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).ok();
            stream.write_all(body).ok();
        }
    });
    port
}

#[test]
fn a_registry_cannot_make_pull_read_without_bound() {
    // A config said to weigh 4 EiB, read into memory as it streams,
    // would take the runtime's memory with it.
    let config = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", "a".repeat(64)),
            "size": 1u64 << 62,
        },
        "layers": [],
    });
    let huge_config = lying_registry(serde_json::to_vec(&config).unwrap());
    // A manifest of 5 MiB: more than any real one, read whole.
    let mut padded = serde_json::to_vec(&config).unwrap();
    padded.pop();
    padded.extend(std::iter::repeat_n(b' ', 5 << 20));
    padded.push(b'}');
    let huge_manifest = lying_registry(padded);
    let state = TempDir::new();
    for (port, said) in [(huge_config, "4194304"), (huge_manifest, "limit")] {
        let name = format!("127.0.0.1:{port}/huge:1");
        let pull = tincan_in(state.path()).args(["pull", &name]).run();
        pull.expect_status(125);
        let line = pull.error_line();
        assert!(line.contains(said), "{line}");
    }
}
