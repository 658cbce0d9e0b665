//! The broker URL: `mqtt://host[:port]` (TCP, default port 1883) or
//! `mqtts://host[:port]` (TLS, default port 8883). IPv6 literals go in
//! brackets (`mqtt://[::1]:1883`). Credentials are never part of the URL:
//! they live in the credentials file. Pure.

use super::ConfigError;
use std::fmt;

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`.
    pub tls: bool,
    /// Host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl BrokerUrl {
    /// Parses a broker URL; `key` names the setting in errors.
    pub fn parse(text: &str, key: &str) -> Result<BrokerUrl, ConfigError> {
        let fail = |message: String| ConfigError::invalid(key, message);
        let (tls, rest) = if let Some(rest) = text.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(fail(format!(
                "{text:?} must start with mqtt:// or mqtts://"
            )));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(fail(
                "credentials do not belong in the URL: use the credentials file".to_string(),
            ));
        }
        if rest.contains(['/', '?', '#']) {
            return Err(fail(format!("{text:?} must be scheme://host[:port]")));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| fail(format!("{text:?}: unclosed '[' in the host")))?;
            match after {
                "" => (host, None),
                p => match p.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(fail(format!("{text:?}: junk after ']'"))),
                },
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some(_) => {
                    return Err(fail(format!("{text:?}: put an IPv6 address in brackets")));
                }
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(fail(format!("{text:?} has no host")));
        }
        let port = match port {
            None if tls => 8883,
            None => 1883,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(fail(format!("{text:?}: port {p:?} is not 1-65535"))),
            },
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Result<BrokerUrl, String> {
        BrokerUrl::parse(s, "broker").map_err(|e| e.to_string())
    }

    #[test]
    fn broker_urls_default_their_port_by_scheme() {
        let plain = url("mqtt://broker.local").unwrap();
        assert_eq!(
            (plain.tls, plain.host.as_str(), plain.port),
            (false, "broker.local", 1883)
        );
        let tls = url("mqtts://broker.local/").unwrap();
        assert_eq!((tls.tls, tls.port), (true, 8883));
        assert_eq!(url("mqtt://127.0.0.1:11883").unwrap().port, 11883);
    }

    #[test]
    fn ipv6_broker_addresses_go_in_brackets() {
        let v6 = url("mqtt://[::1]:1884").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1884));
        assert_eq!(v6.to_string(), "mqtt://[::1]:1884");
        assert_eq!(url("mqtts://[fe80::1]").unwrap().port, 8883);
        assert!(url("mqtt://::1:1883").unwrap_err().contains("brackets"));
        assert!(url("mqtt://[::1").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn bad_broker_urls_are_refused_with_the_setting_named() {
        let cases = [
            ("http://x", "must start with mqtt:// or mqtts://"),
            ("mqtt://", "has no host"),
            ("mqtt://:1883", "has no host"),
            ("mqtt://u:p@host", "credentials do not belong in the URL"),
            ("mqtt://host:0", "port \"0\" is not 1-65535"),
            ("mqtt://host:99999", "port \"99999\" is not 1-65535"),
            ("mqtt://host/path", "must be scheme://host[:port]"),
        ];
        for (text, want) in cases {
            let err = url(text).unwrap_err();
            assert!(err.starts_with("invalid setting broker: "), "{err}");
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["mqtt://a:1883", "mqtts://b.example:8884", "mqtt://[::1]:1"] {
            assert_eq!(url(s).unwrap().to_string(), s);
        }
    }
}
