//! Downloads of automatic deliveries.

pub mod engine;
pub mod filename;
pub mod hook;
pub mod oneshot;
pub mod transfer;

/// Bytes in binary units for people: `512 B`, `1.5 GiB` (CLI progress and the dashboard).
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(512.0), "512 B");
        assert_eq!(super::human_bytes(1536.0), "1.5 KiB");
        assert_eq!(super::human_bytes(24.0 * 1024.0 * 1024.0), "24.0 MiB");
    }
}
