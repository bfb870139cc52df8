//! Which digest a download must have, and who must have signed it.
//!
//! `hooks publish` stores the bundle's sha256 as object metadata and, with `--signing-key`, an
//! ed25519 signature of it. The signed message is `hooks-bundle-sha256:` followed by the
//! lowercase hex digest, so a signature made for anything else never verifies here. Keys are
//! PEM files (`openssl genpkey -algorithm ed25519 -out key.pem`, `openssl pkey -in key.pem
//! -pubout -out key.pub`): key material is never taken from a flag's value.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{BundleError, Head, Verification};

/// Object metadata key holding the bundle's sha256 (lowercase hex).
pub const SHA256_METADATA: &str = "sha256";
/// Object metadata key holding the ed25519 signature of the digest (hex).
pub const SIGNATURE_METADATA: &str = "ed25519";

/// Why a key file could not be used; the text names the file and how to make a good one, and
/// never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("{}: cannot read the key: {source}", file.display())]
    Unreadable {
        /// The key file.
        file: PathBuf,
        /// The read's error.
        source: std::io::Error,
    },
    /// A `--trusted-key` file that holds no PEM ed25519 public key.
    #[error(
        "{}: not an ed25519 public key in PEM ({source}); make one with `openssl pkey -in signing.pem -pubout -out trusted.pub`",
        file.display()
    )]
    NotPublicKey {
        /// The key file.
        file: PathBuf,
        /// What the PEM/SPKI decoder found wrong.
        source: ed25519_dalek::pkcs8::spki::Error,
    },
    /// A `--signing-key` file that holds no PKCS#8 PEM ed25519 private key.
    #[error(
        "{}: not an ed25519 private key in PKCS#8 PEM; make one with `openssl genpkey -algorithm ed25519 -out {}`",
        file.display(),
        file.display()
    )]
    NotPrivateKey {
        /// The key file.
        file: PathBuf,
    },
}

/// Public keys a deployment accepts signatures from (`--trusted-key FILE`, repeatable).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(PathBuf, VerifyingKey)>,
}

impl TrustedKeys {
    /// Reads each PEM public key file; the error names the file and what it should hold.
    pub fn load(files: &[PathBuf]) -> Result<Self, KeyFileError> {
        let mut keys = Vec::new();
        for file in files {
            let text = read_key_file(file)?;
            let key = VerifyingKey::from_public_key_pem(&text).map_err(|source| {
                KeyFileError::NotPublicKey {
                    file: file.clone(),
                    source,
                }
            })?;
            keys.push((file.clone(), key));
        }
        Ok(Self { keys })
    }

    /// True when no key is configured (signatures are then not checked).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The file of the first key that signed `sha256`, if any did.
    fn signer(&self, sha256: &str, signature: &Signature) -> Option<&Path> {
        let message = message(sha256);
        self.keys
            .iter()
            .find(|(_, key)| key.verify_strict(&message, signature).is_ok())
            .map(|(file, _)| file.as_path())
    }
}

/// A private key for `hooks publish --signing-key FILE`.
pub struct SigningKeyFile {
    key: SigningKey,
}

impl SigningKeyFile {
    /// Reads a PKCS#8 PEM ed25519 private key (what `openssl genpkey -algorithm ed25519`
    /// writes). The error never quotes the file's content.
    pub fn load(file: &Path) -> Result<Self, KeyFileError> {
        let text = read_key_file(file)?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|_| KeyFileError::NotPrivateKey {
            file: file.to_path_buf(),
        })?;
        Ok(Self { key })
    }

    /// The hex signature of `sha256` to store as [`SIGNATURE_METADATA`].
    pub fn sign(&self, sha256: &str) -> String {
        hex::encode(self.key.sign(&message(sha256)).to_bytes())
    }
}

fn read_key_file(file: &Path) -> Result<String, KeyFileError> {
    std::fs::read_to_string(file).map_err(|source| KeyFileError::Unreadable {
        file: file.to_path_buf(),
        source,
    })
}

fn message(sha256: &str) -> Vec<u8> {
    format!("hooks-bundle-sha256:{}", sha256.to_ascii_lowercase()).into_bytes()
}

/// True for 64 hexadecimal characters.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Decides, from the HEAD and the operator's settings, which digest the download must have;
/// refuses (exit 3) a missing digest when one is required and a missing or bad signature when
/// keys are configured, before any of the body is read.
pub(super) fn expected_digest(
    bundle: &str,
    head: &Head,
    verification: &Verification,
) -> Result<Option<String>, BundleError> {
    let stored = head.sha256.as_deref();
    if let Some(stored) = stored
        && !is_sha256_hex(stored)
    {
        return Err(BundleError::Invalid(format!(
            "{bundle}: metadata '{SHA256_METADATA}' is '{stored}', not a sha256; publish the \
             bundle again with `hooks publish`"
        )));
    }
    let expected = verification
        .sha256
        .as_deref()
        .or(stored)
        .map(str::to_ascii_lowercase);
    let Some(expected) = expected else {
        if verification.require_sha256 || !verification.trusted.is_empty() {
            return Err(BundleError::Invalid(format!(
                "{bundle}: no sha256 to check the download against: the object has no \
                 '{SHA256_METADATA}' metadata and --sha256 was not given; publish it with \
                 `hooks publish`, pass --sha256, or allow it with --allow-unverified"
            )));
        }
        return Ok(None);
    };
    if verification.trusted.is_empty() {
        return Ok(Some(expected));
    }
    let Some(signature) = head.signature.as_deref() else {
        return Err(BundleError::Invalid(format!(
            "{bundle}: unsigned bundle refused: trusted keys are configured (--trusted-key) but \
             the object has no '{SIGNATURE_METADATA}' metadata; publish it with `hooks publish \
             --signing-key FILE`"
        )));
    };
    let parsed = hex::decode(signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok());
    let signer = parsed.and_then(|sig| verification.trusted.signer(&expected, &sig));
    match signer {
        Some(file) => {
            tracing::info!(bundle, key = %file.display(), "signature verified");
            Ok(Some(expected))
        }
        None => Err(BundleError::Invalid(format!(
            "{bundle}: bad signature: the '{SIGNATURE_METADATA}' metadata is not a signature of \
             sha256 {expected} by any --trusted-key; check that the bundle was published with \
             the matching signing key"
        ))),
    }
}
