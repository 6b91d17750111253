use super::*;

#[test]
fn challenges_are_read_with_commas_in_quotes() {
    let params = r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#;
    let param = |name| challenge_param(params, name);
    assert_eq!(param("realm").unwrap(), "https://auth.docker.io/token");
    assert_eq!(param("service").unwrap(), "registry.docker.io");
    assert_eq!(param("scope").unwrap(), "repository:a/b:pull,push");
    assert_eq!(param("error"), None);
}

#[test]
fn plain_http_is_for_this_machine_or_insecure_registries() {
    for host in ["localhost", "localhost:5000", "127.0.0.1:80", "[::1]:5000"] {
        assert!(plain_http_allowed(host, false), "{host}");
    }
    for host in ["registry-1.docker.io", "ghcr.io:443", "localhost.evil"] {
        assert!(!plain_http_allowed(host, false), "{host}");
    }
    assert!(plain_http_allowed("registry.lan:5000", true));
}

#[test]
fn an_index_gives_this_machines_linux_manifest() {
    let index = |platforms: &[&str]| -> Vec<Descriptor> {
        let entries: Vec<String> = platforms
            .iter()
            .map(|name| {
                let part = |i| name.split('/').nth(i).unwrap_or_default();
                format!(
                    r#"{{"digest": "{name}", "size": 1, "platform": {{
                    "os": "{}", "architecture": "{}", "variant": "{}"}}}}"#,
                    part(0),
                    part(1),
                    part(2)
                )
            })
            .collect();
        let json = format!(r#"{{"manifests": [{}]}}"#, entries.join(","));
        serde_json::from_str::<Manifest>(&json).unwrap().manifests
    };
    let ours = format!("linux/{}", oci_architecture());
    let found = index(&["windows/amd64", &ours, "unknown/unknown"]);
    assert_eq!(pick_platform(&found).unwrap().digest, ours);
    if ours == "linux/arm64" {
        let variants = index(&["linux/arm64/v7", "linux/arm64/v8"]);
        let picked = pick_platform(&variants).unwrap();
        assert_eq!(picked.digest, "linux/arm64/v8");
    }
    let none = index(&["linux/s390x", "linux/arm/v7"]);
    assert_eq!(
        pick_platform(&none).unwrap_err().to_string(),
        format!("no image for {ours}, only for linux/s390x, linux/arm/v7")
    );
}
