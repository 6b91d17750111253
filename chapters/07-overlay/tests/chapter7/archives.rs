//! (being written)

use super::fixtures::{self, Change};

#[test]
fn fixture_smoke() {
    let dir = testkit::TempDir::new();
    let layout = fixtures::oci_layout(
        dir.path(),
        "1",
        &[
            &[Change::Write("/file", "two"), Change::Dir("/d")],
            &[Change::Remove("/d")],
        ],
    );
    fixtures::umoci(&[
        "config",
        "--image",
        &format!("{}:1", layout.display()),
        "--config.cmd",
        "x",
    ]);
    let file = dir.path().join("a.tar");
    fixtures::skopeo(&[
        "copy",
        &format!("oci:{}:1", layout.display()),
        &format!("docker-archive:{}:x:1", file.display()),
    ]);
}
