//! The static files the pages load, embedded in the binary: a node serves its own pages with
//! nothing beside it on disk.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/assets/`.
    pub name: &'static str,
    pub bytes: &'static [u8],
}

/// Every file served under `/assets/`. A file added to `assets/` is served once it is listed here.
pub const ASSETS: &[Asset] = &[
    Asset { name: "style.css", bytes: include_bytes!("../assets/style.css") },
    Asset { name: "app.js", bytes: include_bytes!("../assets/app.js") },
    Asset { name: "substrate.js", bytes: include_bytes!("../assets/substrate.js") },
];

/// Each asset's version: the first 16 hex digits of its SHA-256, in the order of [`ASSETS`].
static VERSIONS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| hex::encode(&Sha256::digest(a.bytes)[..8])).collect());

/// Each asset gzipped once, in the order of [`ASSETS`]: the scripts are most of a page's weight.
static GZIPPED: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| ASSETS.iter().map(|a| gzip(a.bytes)).collect());

/// `bytes` gzipped (RFC 1952) at the best compression: what a browser that sends
/// `Accept-Encoding: gzip` is given.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

impl Asset {
    /// The embedded file called `name`, if there is one.
    pub fn named(name: &str) -> Option<&'static Asset> {
        ASSETS.iter().find(|a| a.name == name)
    }

    /// A digest of the content: it changes whenever the file does, so a URL carrying it can be
    /// cached for good.
    pub fn version(&self) -> &'static str {
        let at = ASSETS.iter().position(|a| a.name == self.name).unwrap_or(0);
        VERSIONS.get(at).map_or("", String::as_str)
    }

    /// The file gzipped, made once.
    pub fn gzipped(&self) -> &'static [u8] {
        let at = ASSETS.iter().position(|a| a.name == self.name).unwrap_or(0);
        GZIPPED.get(at).map_or(&[][..], Vec::as_slice)
    }

    /// The media type, from the file's extension.
    pub fn content_type(&self) -> &'static str {
        match self.name.rsplit_once('.').map(|(_, extension)| extension) {
            Some("css") => "text/css; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("json") => "application/json",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("ico") => "image/x-icon",
            Some("woff2") => "font/woff2",
            Some("wasm") => "application/wasm",
            Some("txt") => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        }
    }
}

/// The URL of the asset `name`, with its version as the query so a changed file is fetched anew.
pub fn url(name: &str) -> String {
    match Asset::named(name) {
        Some(asset) => format!("/assets/{name}?v={}", asset.version()),
        None => format!("/assets/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_type_and_a_version_that_follows_its_content() {
        for asset in ASSETS {
            assert_ne!(asset.content_type(), "application/octet-stream", "{}", asset.name);
            assert_eq!(asset.version().len(), 16, "{}", asset.name);
            assert!(url(asset.name).ends_with(asset.version()), "{}", asset.name);
        }
        let style = Asset::named("style.css").expect("the style sheet");
        let app = Asset::named("app.js").expect("the script");
        assert_ne!(style.version(), app.version());
        assert!(Asset::named("../Cargo.toml").is_none());
    }

    #[test]
    fn the_gzipped_assets_unpack_to_the_files() {
        use std::io::Read;
        for asset in ASSETS {
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(asset.gzipped()).read_to_end(&mut unpacked).expect("gzip");
            assert_eq!(unpacked, asset.bytes, "{}", asset.name);
            assert!(asset.gzipped().len() < asset.bytes.len() / 2, "{}", asset.name);
        }
    }
}
