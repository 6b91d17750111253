//! Image references: `[registry/][repository/]name[:tag][@digest]`.
//!
//! A reference names an image the way Docker does, and is normalized
//! the way Docker normalizes it, so that the same image has one name in
//! the store whatever the user typed:
//!
//! - no registry means Docker Hub, `docker.io`;
//! - a one-word name on Docker Hub is an official image, in `library/`;
//! - no tag means `latest`.
//!
//! `debian` is `docker.io/library/debian:latest`; `localhost:5000/x/y:1`
//! stays as it is. The first part is a registry when it has a `.` or a
//! `:`, or is `localhost`, as in Docker's `reference` package.
//!
//! Simpler than Docker: only sha256 digests.

use std::fmt;

use anyhow::{bail, Result};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";

/// A normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The registry's host, and port if any: `docker.io`,
    /// `localhost:5000`.
    pub registry: String,
    /// The repository in the registry: `library/debian`, `team/app`.
    pub repository: String,
    /// The tag: `latest` unless given.
    pub tag: String,
    /// `sha256:...`, when the image was asked for by digest.
    pub digest: Option<String>,
}

// ANCHOR: parse
impl Reference {
    /// Parse and normalize what the user typed.
    pub fn parse(text: &str) -> Result<Reference> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(text, digest)?)),
            None => (text, None),
        };
        // A tag follows the last `:` that comes after the last `/`: in
        // `localhost:5000/app`, `5000` is a port, not a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (name, tag) = rest.split_at(last_slash + i);
                (name, Some(&tag[1..]))
            }
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if is_registry(first) => (first, rest.into()),
            _ if name.contains('/') => (DOCKER_HUB, name.to_string()),
            _ => (DOCKER_HUB, format!("library/{name}")),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        // An official image of Docker Hub, named with its registry.
        let repository = if registry == DOCKER_HUB && !repository.contains('/')
        {
            format!("library/{repository}")
        } else {
            repository
        };
        check_repository(text, &repository)?;
        let tag = tag.unwrap_or("latest");
        check_tag(text, tag)?;
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag: tag.to_string(),
            digest,
        })
    }
}
// ANCHOR_END: parse

impl Reference {
    /// `registry/repository:tag`: the name the store files the image
    /// under (a digest pins what is pulled; the tag is what is kept).
    pub fn tagged(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }

    /// The repository as `docker images` shows it: `debian` for an
    /// official image of Docker Hub, `team/app` for another of Docker
    /// Hub, the whole name for another registry.
    pub fn familiar_repository(&self) -> String {
        if self.registry != DOCKER_HUB {
            return format!("{}/{}", self.registry, self.repository);
        }
        match self.repository.strip_prefix("library/") {
            Some(official) if !official.contains('/') => official.to_string(),
            _ => self.repository.clone(),
        }
    }

    /// What to ask the registry for: the digest if given, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest.as_deref().unwrap_or(&self.tag)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.digest {
            Some(digest) => {
                write!(f, "{}/{}@{digest}", self.registry, self.repository)
            }
            None => f.write_str(&self.tagged()),
        }
    }
}

/// Whether the first part of a name is a registry's host rather than a
/// repository's first component.
fn is_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// Repository components are lowercase letters and digits, joined by
/// `.`, `_`, `__` or dashes, and split by `/`.
fn check_repository(text: &str, repository: &str) -> Result<()> {
    let valid_component = |part: &str| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'_' | b'-')
            })
    };
    if repository.len() > 255 || !repository.split('/').all(valid_component) {
        bail!(
            "image {text}: invalid reference format: a repository name \
             is lowercase letters, digits and separators"
        );
    }
    Ok(())
}

/// A tag is up to 128 letters, digits, `_`, `.` and `-`, not starting
/// with `.` or `-`.
fn check_tag(text: &str, tag: &str) -> Result<()> {
    let bytes = tag.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
        });
    if !valid {
        bail!("image {text}: invalid tag {tag:?}");
    }
    Ok(())
}

/// `sha256:` and 64 lowercase hex digits.
pub fn parse_digest(text: &str, digest: &str) -> Result<String> {
    let valid = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if !valid {
        bail!(
            "image {text}: invalid digest {digest:?} (sha256:<64 hex digits>)"
        );
    }
    Ok(digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::Reference;

    fn normalized(text: &str) -> String {
        Reference::parse(text).unwrap().to_string()
    }

    #[test]
    fn names_are_normalized_as_docker_does() {
        let cases = [
            ("debian", "docker.io/library/debian:latest"),
            (
                "debian:bookworm-slim",
                "docker.io/library/debian:bookworm-slim",
            ),
            ("team/app", "docker.io/team/app:latest"),
            ("docker.io/debian:12", "docker.io/library/debian:12"),
            (
                "index.docker.io/library/debian",
                "docker.io/library/debian:latest",
            ),
            ("localhost:5000/x/y:1", "localhost:5000/x/y:1"),
            ("localhost/app", "localhost/app:latest"),
            ("ghcr.io/o/r", "ghcr.io/o/r:latest"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
        ];
        for (text, expected) in cases {
            assert_eq!(normalized(text), expected, "{text}");
        }
    }

    #[test]
    fn a_digest_pins_the_image() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let reference = Reference::parse(&format!("debian@{digest}")).unwrap();
        assert_eq!(reference.manifest_reference(), digest);
        assert_eq!(reference.tag, "latest");
        assert!(Reference::parse("debian@sha256:abc").is_err());
    }

    #[test]
    fn docker_images_shows_short_repository_names() {
        let familiar =
            |text: &str| Reference::parse(text).unwrap().familiar_repository();
        assert_eq!(familiar("debian"), "debian");
        assert_eq!(familiar("team/app"), "team/app");
        assert_eq!(familiar("localhost:5000/x/y"), "localhost:5000/x/y");
    }

    #[test]
    fn bad_names_are_refused() {
        for text in ["Debian", "debian:", "a//b", "-x", "debian:.bad", "x/"] {
            assert!(Reference::parse(text).is_err(), "{text}");
        }
    }
}
