//! `pull`: an image from a registry, over the OCI distribution API
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>),
//! as `docker pull` fetches it. On the wire:
//!
//! 1. `GET /v2/`, as Docker does first: any answer says the registry is
//!    there, and over which scheme.
//! 2. `GET /v2/<repository>/manifests/<tag or digest>`, accepting OCI's
//!    and Docker's manifests and indexes. A registry that hands out
//!    tokens answers 401, `WWW-Authenticate: Bearer realm=...`; the
//!    realm gives an anonymous token for `repository:<repository>:pull`,
//!    and the request is made again with it
//!    (<https://distribution.github.io/distribution/spec/auth/token/>).
//! 3. An index (Docker's manifest list) names a manifest per platform:
//!    linux on this machine's architecture is fetched, by digest.
//! 4. `GET /v2/<repository>/blobs/<digest>` for the image config, then
//!    for each layer the store does not have yet.
//!
//! Everything is checked against its digest as it comes: the manifest
//! when pulled by digest, the config, each layer as it downloads, and
//! again as it unpacks (its diff id, in the config). Nothing reaches the
//! store before its check passes: neither the registry nor anything on
//! the way can slip in other bytes.
//!
//! Docker Hub is `docker.io` in names, `registry-1.docker.io` on the
//! wire. HTTPS always; plain HTTP, when HTTPS fails, only for a registry
//! on this machine or one given `--insecure`, as Docker treats its
//! insecure registries. On a terminal, a line per layer shows how it
//! goes, as in `docker pull`; elsewhere, one line at the end.
//!
//! Simpler than Docker: one layer at a time (Docker fetches three at
//! once), no resumed downloads, no mirrors, no credentials (anonymous
//! tokens only: there is no `login`), sha256 only.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{
    MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};
use serde::Deserialize;
use ureq::http::Response;
use ureq::{Agent, Body};

use super::config::{oci_architecture, Image};
use super::digest::{self, expect_digest, short_id, Hashing};
use super::reference::{parse_digest, Reference, DOCKER_HUB};
use super::store::Store;
use crate::state::human_size;
use crate::trace;

/// The manifests `pull` understands: an image's, or an index of them,
/// in OCI's media types and Docker's.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The most a manifest, an index or a config may weigh, read whole into
/// memory: 4 MiB, as containerd allows. A layer streams to disk, no
/// longer than its manifest says.
const MAX_DOCUMENT: u64 = 4 << 20;

/// A manifest, or an index: the first has a config and layers, the
/// second a list of manifests.
#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// What a manifest says of a blob, or an index of a manifest.
#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Platform,
}

#[derive(Debug, Default, Deserialize)]
struct Platform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: String,
}

// ANCHOR: pull
/// Pull `reference` into the store and tag it; return the image.
pub fn pull(
    store: &Store,
    reference: &Reference,
    insecure: bool,
) -> Result<Image> {
    let mut registry = Registry::connect(reference, insecure)?;
    let wanted = reference.manifest_reference();
    let mut manifest =
        registry.manifest(wanted, reference.digest.as_deref())?;
    if manifest.config.is_none() {
        let entry = pick_platform(&manifest.manifests)
            .with_context(|| format!("manifest {wanted}"))?;
        check_digest(&format!("manifest {wanted}"), &entry.digest)?;
        manifest = registry.manifest(&entry.digest, Some(&entry.digest))?;
    }
    let Some(config) = &manifest.config else {
        bail!("manifest {wanted}: neither an image's manifest nor an index");
    };
    // A config is read into memory: no bigger than a document may be,
    // whatever size the manifest claims.
    if config.size > MAX_DOCUMENT {
        bail!(
            "config {}: {} bytes, more than the {MAX_DOCUMENT} a config \
             may have",
            config.digest,
            config.size
        );
    }
    let mut raw = Vec::new();
    registry.blob(config, &mut raw, &ProgressBar::hidden())?;
    let parsed: super::config::Config = serde_json::from_slice(&raw)
        .with_context(|| format!("config {}", config.digest))?;
    let diff_ids = parsed.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        bail!("manifest {wanted}: its layers are not its config's");
    }
    for diff_id in &diff_ids {
        check_digest(&format!("config {}", config.digest), diff_id)?;
    }

    // One line per layer, as `docker pull` draws them, on a terminal
    // (indicatif draws nothing elsewhere, nor where TERM is dumb).
    let target = ProgressDrawTarget::stderr();
    let drawn = !target.is_hidden();
    let lines = MultiProgress::with_draw_target(target);
    let (mut new, mut downloaded) = (0, 0);
    for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
        let bar = ProgressBar::new(layer.size)
            .with_style(ProgressStyle::with_template("{prefix}: {msg}")?)
            .with_prefix(short_id(&layer.digest).to_string())
            .with_message("Pulling fs layer");
        let bar = lines.add(bar);
        if store.has_layer(diff_id) {
            bar.finish_with_message("Already exists");
        } else {
            registry.layer(store, layer, diff_id, &bar)?;
            (new, downloaded) = (new + 1, downloaded + layer.size);
        }
    }

    let image = store.add_image(&raw)?;
    let _lock = store.lock()?;
    store.tag(reference, &image.id)?;
    if !drawn {
        eprintln!(
            "pulled {reference}: {} layers ({new} new), {} downloaded",
            diff_ids.len(),
            human_size(downloaded)
        );
    }
    Ok(image)
}
// ANCHOR_END: pull

/// A registry, for one repository: where it answers, and the token it
/// gave, if any.
struct Registry {
    agent: Agent,
    /// `https://registry-1.docker.io/v2/library/debian`.
    base: String,
    repository: String,
    token: Option<String>,
}

impl Registry {
    /// Find the registry of `reference`: over HTTPS, or plain HTTP
    /// where that is allowed.
    fn connect(reference: &Reference, insecure: bool) -> Result<Registry> {
        let host = match reference.registry.as_str() {
            DOCKER_HUB => "registry-1.docker.io",
            other => other,
        };
        let agent: Agent = Agent::config_builder()
            // A 401 or a 404 is an answer to read, not a failure.
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .into();
        // Docker's first request: any answer to `/v2/` (a 401 too) says
        // the registry is there, and over which scheme.
        let ping = |scheme: &str| {
            let url = format!("{scheme}://{host}/v2/");
            trace!("GET {url}");
            agent.get(&url).call().map(|_| url)
        };
        let url = match ping("https") {
            Err(_) if plain_http_allowed(host, insecure) => ping("http"),
            https => https,
        }
        .with_context(|| format!("registry {host}"))?;
        Ok(Registry {
            base: format!("{url}{}", reference.repository),
            repository: reference.repository.clone(),
            agent,
            token: None,
        })
    }

    /// GET `path` in the repository (`manifests/...`, `blobs/...`),
    /// with a token when the registry asks for one.
    fn get(&mut self, path: &str, accept: &str) -> Result<Response<Body>> {
        let url = format!("{}/{path}", self.base);
        let send = |token: &Option<String>| {
            trace!("GET {url}");
            let mut request = self.agent.get(&url).header("Accept", accept);
            if let Some(token) = token {
                let bearer = format!("Bearer {token}");
                request = request.header("Authorization", bearer);
            }
            request.call().with_context(|| format!("GET {url}"))
        };
        let mut response = send(&self.token)?;
        // Asked for a token, or a new one (they last minutes): once.
        if response.status() == 401 {
            let token = Some(self.fetch_token(&response)?);
            response = send(&token)?;
            self.token = token;
        }
        if !response.status().is_success() {
            bail!(registry_error(response));
        }
        Ok(response)
    }

    /// An anonymous token to pull from the repository, from the realm a
    /// 401 names.
    fn fetch_token(&self, unauthorized: &Response<Body>) -> Result<String> {
        let challenge = unauthorized
            .headers()
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let params = challenge.strip_prefix("Bearer ").unwrap_or_default();
        let Some(realm) = challenge_param(params, "realm") else {
            bail!("the registry wants credentials ({challenge:?})");
        };
        let scope = format!("repository:{}:pull", self.repository);
        let mut request = self.agent.get(&realm).query("scope", scope);
        if let Some(service) = challenge_param(params, "service") {
            request = request.query("service", service);
        }
        trace!("GET {realm} (a token)");
        let what = || format!("token from {realm}");
        let mut response = request.call().with_context(what)?;
        if !response.status().is_success() {
            bail!("{}: {}", what(), registry_error(response));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .with_context(what)?;
        let answer: serde_json::Value =
            serde_json::from_slice(&body).with_context(what)?;
        let token =
            answer["token"].as_str().or(answer["access_token"].as_str());
        Ok(token
            .with_context(|| format!("{}: none given", what()))?
            .into())
    }

    /// The manifest (or index) a tag or digest names, checked against
    /// `digest` when there is one.
    fn manifest(
        &mut self,
        name: &str,
        digest: Option<&str>,
    ) -> Result<Manifest> {
        let what = || format!("manifest {name}");
        let mut response = self
            .get(&format!("manifests/{name}"), MANIFEST_TYPES)
            .with_context(what)?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .with_context(what)?;
        if let Some(digest) = digest {
            let actual = digest::sha256_digest(&bytes);
            expect_digest(&what(), digest, &actual)?;
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).with_context(what)?;
        for blob in manifest.config.iter().chain(&manifest.layers) {
            check_digest(&what(), &blob.digest)?;
        }
        Ok(manifest)
    }

    /// Download a blob into `out`, hashing it as it comes: an error if
    /// it is not the bytes its descriptor names.
    fn blob(
        &mut self,
        blob: &Descriptor,
        out: &mut impl Write,
        bar: &ProgressBar,
    ) -> Result<()> {
        let what = || format!("blob {}", blob.digest);
        let response = self
            .get(&format!("blobs/{}", blob.digest), "*/*")
            .with_context(what)?;
        // A registry could send bytes forever: past the size the
        // manifest gave, they are not the blob.
        let body = response.into_body().into_reader().take(blob.size + 1);
        let mut hashing = Hashing::new(bar.wrap_read(body));
        let size = io::copy(&mut hashing, out).with_context(what)?;
        if size > blob.size {
            bail!("{}: more than its {} bytes", what(), blob.size);
        }
        expect_digest(&what(), &blob.digest, &hashing.digest())
    }

    /// Download a layer to a scratch file, then unpack it into the
    /// store, which checks its diff id. The scratch file goes on return,
    /// whatever happened.
    fn layer(
        &mut self,
        store: &Store,
        layer: &Descriptor,
        diff_id: &str,
        bar: &ProgressBar,
    ) -> Result<()> {
        let scratch = store.scratch()?;
        let path = scratch.path().join("blob");
        let mut file = File::create(&path)
            .with_context(|| format!("create {}", path.display()))?;
        let downloading = "{prefix}: Downloading [{bar:40}] \
                           {decimal_bytes}/{decimal_total_bytes}";
        let style = ProgressStyle::with_template(downloading)?;
        bar.set_style(style.progress_chars("=> "));
        self.blob(layer, &mut file, bar)?;
        bar.set_style(ProgressStyle::with_template("{prefix}: {msg}")?);
        bar.set_message("Extracting");
        let file = File::open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        store
            .add_layer(file, Some(diff_id))
            .with_context(|| format!("blob {}", layer.digest))?;
        bar.finish_with_message("Pull complete");
        Ok(())
    }
}

/// The entry of an index for linux on this machine's architecture
/// (for arm64, variant v8 if there are several).
fn pick_platform(manifests: &[Descriptor]) -> Result<&Descriptor> {
    let arch = oci_architecture();
    let fits: Vec<&Descriptor> = manifests
        .iter()
        .filter(|m| m.platform.os == "linux" && m.platform.architecture == arch)
        .collect();
    let v8 = fits.iter().find(|m| m.platform.variant == "v8");
    if let Some(found) = v8.or(fits.first()) {
        return Ok(found);
    }
    let offered: Vec<String> = manifests
        .iter()
        .map(|m| &m.platform)
        .map(|p| format!("{}/{}/{}", p.os, p.architecture, p.variant))
        .map(|name| name.trim_end_matches('/').to_string())
        .collect();
    bail!("no image for linux/{arch}, only for {}", offered.join(", "))
}

/// Digests from a registry become paths in the store: only
/// `sha256:<64 hex digits>` is let in.
fn check_digest(what: &str, digest: &str) -> Result<()> {
    match parse_digest(digest, digest) {
        Ok(_) => Ok(()),
        Err(_) => bail!("{what}: {digest:?} is not a sha256 digest"),
    }
}

/// Whether plain HTTP may be tried: for a registry on this machine, or
/// one the user trusts without TLS (`--insecure`).
fn plain_http_allowed(host: &str, insecure: bool) -> bool {
    let name = match host.find(']') {
        Some(end) => &host[..=end],
        None => host.split(':').next().unwrap_or(host),
    };
    insecure || matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// A parameter of a challenge: `realm` in `realm="https://...",
/// service="..."`. Values are quoted, and may hold commas.
fn challenge_param(params: &str, name: &str) -> Option<String> {
    let mut rest = params;
    while let Some((key, after)) = rest.split_once('=') {
        let (value, next) = after.strip_prefix('"')?.split_once('"')?;
        if key.trim_start_matches([',', ' ']) == name {
            return Some(value.to_string());
        }
        rest = next;
    }
    None
}

/// What a registry says of a failed request: the messages of its JSON
/// errors (`{"errors": [{"message": "manifest unknown", ...}]}`), and
/// the status.
fn registry_error(mut response: Response<Body>) -> String {
    let status = response.status();
    let body = response.body_mut().read_to_vec().unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or_default();
    let messages: Vec<&str> = json["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|error| error["message"].as_str())
        .collect();
    match messages.is_empty() {
        true => status.to_string(),
        false => format!("{} ({status})", messages.join("; ")),
    }
}
#[cfg(test)]
mod tests;
