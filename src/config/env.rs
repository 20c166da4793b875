//! Reading the environment: one helper so that every area reads, trims and reports its
//! variables the same way.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::ConfigError;

/// The environment (process variables after `.env`, or a test's table) as the readers see it.
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The variable's value, `None` when unset or blank.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    /// A command-line flag wins over its variable.
    pub fn pick(&self, flag: &Option<String>, var: &str) -> Option<String> {
        flag.clone()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| self.get(var))
    }

    /// A trimmed secret.
    pub fn secret(&self, var: &str) -> Option<SecretString> {
        self.get(var)
            .map(|v| SecretString::from(v.trim().to_string()))
    }

    /// A trimmed plain value.
    pub fn text(&self, var: &str) -> Option<String> {
        self.get(var).map(|v| v.trim().to_string())
    }

    /// Parses `raw` (when given) with `parse`; its error becomes [`ConfigError::Invalid`] naming `var`.
    pub fn parse<T>(
        var: &'static str,
        raw: Option<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match raw {
            None => Ok(None),
            Some(raw) => parse(raw.trim())
                .map(Some)
                .map_err(|reason| ConfigError::Invalid {
                    var,
                    value: raw,
                    reason,
                }),
        }
    }

    /// A whole number of seconds (`default` when unset); 0 only when `zero_ok`.
    pub fn seconds(
        var: &'static str,
        raw: Option<String>,
        default: u64,
        zero_ok: bool,
    ) -> Result<Duration, ConfigError> {
        let value = Self::parse(var, raw, |raw| {
            let n: u64 = raw
                .parse()
                .map_err(|_| "expected a whole number of seconds".to_string())?;
            if n == 0 && !zero_ok {
                return Err("must be at least 1 second".into());
            }
            Ok(n)
        })?;
        Ok(Duration::from_secs(value.unwrap_or(default)))
    }

    /// An age or period such as `7d`, `36h`, `90m`, `45s` or `2w`; `0` means "no limit" (`None`).
    /// `default` applies when unset. A bare number other than 0 is refused: its unit would be a guess.
    pub fn age_limit(
        var: &'static str,
        raw: Option<String>,
        default: Option<Duration>,
    ) -> Result<Option<Duration>, ConfigError> {
        match Self::parse(var, raw, parse_age_limit)? {
            None => Ok(default),
            Some(limit) => Ok(limit),
        }
    }

    /// A yes/no switch: 1/0, true/false, yes/no, on/off (`false` when unset).
    pub fn switch(&self, var: &'static str) -> Result<bool, ConfigError> {
        Ok(Self::parse(var, self.get(var), |raw| {
            match raw.to_ascii_lowercase().as_str() {
                "0" | "false" | "no" | "off" => Ok(false),
                "1" | "true" | "yes" | "on" => Ok(true),
                _ => Err("expected 1 or 0 (true/false, yes/no)".into()),
            }
        })?
        .unwrap_or(false))
    }

    /// An http(s) URL with a host (`default` when unset).
    pub fn http_url(&self, var: &'static str, default: &str) -> Result<Url, ConfigError> {
        let raw = self.get(var).unwrap_or_else(|| default.to_string());
        let checked = Url::parse(raw.trim())
            .map_err(|e| format!("not a valid URL ({e})"))
            .and_then(|url| {
                if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() {
                    Ok(url)
                } else {
                    Err("expected an http(s) URL with a host".into())
                }
            });
        checked.map_err(|reason| ConfigError::Invalid {
            var,
            value: raw,
            reason,
        })
    }
}

/// `7d`, `36h`, `90m`, `45s`, `2w` (one number, one unit) or `0` (no limit).
pub fn parse_age_limit(raw: &str) -> Result<Option<Duration>, String> {
    const HINT: &str =
        "expected a number with a unit (s, m, h, d, w) such as 7d or 36h, or 0 for no limit";
    let raw = raw.trim();
    if raw == "0" {
        return Ok(None);
    }
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{raw:?} has no unit: {HINT}"))?;
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().map_err(|_| HINT.to_string())?;
    let unit_secs: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => return Err(format!("unknown unit {other:?}: {HINT}")),
    };
    let secs = n
        .checked_mul(unit_secs)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .ok_or_else(|| "too long (at most 100 years)".to_string())?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::parse_age_limit;
    use std::time::Duration;

    #[test]
    fn age_limits() {
        assert_eq!(
            parse_age_limit("7d"),
            Ok(Some(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(
            parse_age_limit("36h"),
            Ok(Some(Duration::from_secs(36 * 3600)))
        );
        assert_eq!(
            parse_age_limit(" 90m "),
            Ok(Some(Duration::from_secs(5400)))
        );
        assert_eq!(
            parse_age_limit("2W"),
            Ok(Some(Duration::from_secs(14 * 86_400)))
        );
        assert_eq!(parse_age_limit("0"), Ok(None));
        assert_eq!(parse_age_limit("0d"), Ok(None));
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "-1d",
            "1.5d",
            "7 days",
            "99999999999999999999d",
        ] {
            assert!(parse_age_limit(bad).is_err(), "{bad:?}");
        }
    }
}
