//! Text helpers shared by every floor: accent- and case-folding for matching people's words,
//! and bounding text that comes from outside before it is stored, logged or shown.

/// Lowercase, accents removed, split into words (letters and digits; everything else separates,
/// apostrophes included).
pub fn words(text: &str) -> Vec<String> {
    fold_text(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Lowercase with the accents of Latin letters removed ("À Modifier" -> "a modifier").
pub fn fold_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => out.push('a'),
            'æ' => out.push_str("ae"),
            'ç' | 'ć' | 'č' => out.push('c'),
            'ď' => out.push('d'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => out.push('i'),
            'ł' => out.push('l'),
            'ñ' | 'ń' | 'ň' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => out.push('o'),
            'œ' => out.push_str("oe"),
            'ř' => out.push('r'),
            'ś' | 'š' => out.push('s'),
            'ß' => out.push_str("ss"),
            'ť' => out.push('t'),
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ź' | 'ż' | 'ž' => out.push('z'),
            // Combining accents (decomposed input) are dropped.
            '\u{300}'..='\u{36f}' => {}
            other => out.push(other),
        }
    }
    out
}

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
    use super::{fold_text, words};

    #[test]
    fn folding() {
        assert_eq!(fold_text("À Modifier ÉTÉ Œuvre"), "a modifier ete oeuvre");
        assert_eq!(words("c'est-bon!! OK"), vec!["c", "est", "bon", "ok"]);
        // Decomposed é (e + combining acute).
        assert_eq!(fold_text("valide\u{0301}"), "valide");
    }

    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(512.0), "512 B");
        assert_eq!(super::human_bytes(1536.0), "1.5 KiB");
        assert_eq!(super::human_bytes(24.0 * 1024.0 * 1024.0), "24.0 MiB");
    }
}
