//! The token key file: `--jwt-secret`, else a random key kept in the data dir.

use std::path::Path;

/// The token key: `--jwt-secret`, else a random key kept in `data_dir/jwt-secret`
/// (created on first use, readable by the owner only), so that the embedded default
/// and `gridcast-hub token` agree without any flag.
pub fn load_or_create_secret(
    config_secret: Option<&str>,
    data_dir: &Path,
) -> std::io::Result<Vec<u8>> {
    if let Some(s) = config_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    crate::store::embedded::private_dir(data_dir)?;
    let hex = random_hex(32)?;
    use std::io::Write;
    crate::store::embedded::private_options()
        .write(true)
        .create_new(true)
        .open(&path)?
        .write_all(hex.as_bytes())?;
    Ok(hex.into_bytes())
}

/// `bytes` random bytes from the kernel, in hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut raw = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}
