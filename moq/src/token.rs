//! Relay tokens: the fleet's signing key, and the JWTs minted with it for robots and clients.
//!
//! A token's root is one server's `<prefix>/<server>`, so it reaches nothing of another robot.
//! A client token subscribes to the devices it names (each device broadcast exactly) and
//! publishes only its own command broadcast `<device>/w/<client>` of the devices it may write
//! (the relay's read-write), whose answers `<device>/r/<client>` it may read. A robot token publishes everything under its root and subscribes
//! only to the command broadcasts. Every token expires.

use std::path::Path;
use std::time::{Duration, SystemTime};

pub use moq_auth::Key;
use moq_auth::{Algorithm, Claims, Pattern};
use thiserror::Error;
use xoq_wire::name::is_valid_name;

use crate::paths::{
    checked_prefix, PathError, RelayPath, RelayPaths, REPLY_SEGMENT, WRITER_SEGMENT,
};

/// The longest a token may live.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Error)]
pub enum TokenError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("a token must grant something: name devices with --subscribe or --publish")]
    Empty,
    #[error("--publish needs --client NAME: the writer's name is part of the path it may publish")]
    NoClient,
    #[error("`{0}` is not a duration: use a number with s, m, h or d, e.g. 30m or 7d")]
    BadDuration(String),
    #[error("a token may live at most 366 days, not {0:?}")]
    TooLong(Duration),
    #[error("relay key")]
    Key(#[from] moq_auth::Error),
    #[error("the token is not one `xoq-server token` makes: {0}")]
    Malformed(String),
    #[error("the token is for `{token}`, not `{wanted}`: mint one for this server with `xoq-server token --server`")]
    WrongRoot { token: String, wanted: String },
}

/// What a client token lets its holder write, as the token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writes {
    /// The writer's name in its command broadcasts `<device>/w/<client>`.
    pub client: String,
    pub devices: Vec<String>,
}

/// What `token` says its holder may write under `paths`' root, read without checking its
/// signature: the relay checks every session's token, this only tells a mounter which devices
/// to offer read-write and under which writer name. `None` for a token that writes nothing.
pub fn claimed_writes(token: &str, paths: &RelayPaths) -> Result<Option<Writes>, TokenError> {
    use base64::Engine;
    let bad = |why: &str| TokenError::Malformed(why.to_string());
    let mut parts = token.trim().split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("a JWT has three parts separated by `.`"));
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("its claims are not base64url"))?;
    let claims: Claims =
        serde_json::from_slice(&json).map_err(|e| bad(&format!("its claims: {e}")))?;
    if claims.root.trim_matches('/') != paths.root() {
        return Err(TokenError::WrongRoot {
            token: claims.root,
            wanted: paths.root(),
        });
    }
    let mut writes: Option<Writes> = None;
    for p in claims.publish.iter() {
        let Some(RelayPath::Writer { device, client }) = RelayPath::parse_relative(p.as_str())
        else {
            continue;
        };
        match &mut writes {
            None => {
                writes = Some(Writes {
                    client,
                    devices: vec![device],
                })
            }
            Some(w) if w.client == client => w.devices.push(device),
            Some(_) => return Err(bad("it names more than one writer")),
        }
    }
    Ok(writes)
}

/// What a token allows under its server's root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Devices whose broadcasts may be subscribed to.
    pub subscribe: Vec<String>,
    /// Devices the client may write (it may also subscribe to them).
    pub publish: Vec<String>,
    /// The writer's name, needed with `publish`.
    pub client: Option<String>,
    /// A robot's token: publish everything under the root, subscribe to the command broadcasts.
    pub robot: bool,
}

impl Grants {
    /// `"cam0,can0"` as a list of device names (empty entries ignored).
    pub fn device_list(s: &str) -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The claims these grants make under `paths`' root.
    pub fn claims(&self, paths: &RelayPaths) -> Result<Claims, TokenError> {
        let pattern = |p: &str| {
            p.parse::<Pattern>()
                .map_err(|_| PathError::BadSegment(p.into()))
        };
        let mut subscribe = Vec::new();
        let mut publish = Vec::new();
        if self.robot {
            publish.push(pattern("**")?);
            subscribe.push(pattern(&format!("*/{WRITER_SEGMENT}/*"))?);
        }
        for d in self.subscribe.iter().chain(&self.publish) {
            // Checked like every path segment; the path itself is not needed here.
            paths.device(d)?;
            subscribe.push(pattern(d)?);
        }
        if !self.publish.is_empty() {
            let client = self.client.as_deref().ok_or(TokenError::NoClient)?;
            for d in &self.publish {
                paths.writer(d, client)?;
                publish.push(pattern(&format!("{d}/{WRITER_SEGMENT}/{client}"))?);
                subscribe.push(pattern(&format!("{d}/{REPLY_SEGMENT}/{client}"))?);
            }
        } else if let Some(c) = &self.client {
            if !is_valid_name(c) {
                return Err(PathError::BadSegment(c.clone()).into());
            }
        }
        if subscribe.is_empty() && publish.is_empty() {
            return Err(TokenError::Empty);
        }
        Ok(Claims::default()
            .with_root(paths.root())
            .with_subscribe(subscribe)
            .with_publish(publish))
    }
}

/// `30s`, `15m`, `1h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, TokenError> {
    let bad = || TokenError::BadDuration(s.to_string());
    let s = s.trim();
    let split = s.len().checked_sub(1).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let d = Duration::from_secs(secs);
    if d > MAX_LIFETIME {
        return Err(TokenError::TooLong(d));
    }
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

/// A relay's token for dialling another relay of a cluster (`moq-relay --cluster-token`):
/// everything under `prefix` both ways, so the relays forward the fleet's broadcasts and
/// commands between them (each client's own token still limits what it sees).
pub fn mint_cluster(key: &Key, prefix: &str, lifetime: Duration) -> Result<String, TokenError> {
    if lifetime > MAX_LIFETIME {
        return Err(TokenError::TooLong(lifetime));
    }
    let root = checked_prefix(prefix)?;
    let all = "**"
        .parse::<Pattern>()
        .map_err(|_| PathError::BadSegment("**".into()))?;
    let now = SystemTime::now();
    let claims = Claims::default()
        .with_root(root)
        .with_publish([all.clone()])
        .with_subscribe([all])
        .with_issued(now)
        .with_expires(now + lifetime);
    Ok(key.sign(&claims)?)
}

/// Makes the fleet's key pair: the private key (signs tokens; owner-only file) and its public
/// half (all the auth server needs).
pub fn generate_key(private: &Path, public: &Path) -> Result<(), TokenError> {
    let key = Key::generate(Algorithm::EdDSA, None)?;
    key.to_file(private)?;
    key.to_public()?.to_file(public)?;
    Ok(())
}

/// Signs a token for `grants` under `paths`' root, valid for `lifetime` from now.
pub fn mint(
    key: &Key,
    paths: &RelayPaths,
    grants: &Grants,
    lifetime: Duration,
) -> Result<String, TokenError> {
    if lifetime > MAX_LIFETIME {
        return Err(TokenError::TooLong(lifetime));
    }
    let now = SystemTime::now();
    let claims = grants
        .claims(paths)?
        .with_issued(now)
        .with_expires(now + lifetime);
    Ok(key.sign(&claims)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> RelayPaths {
        RelayPaths::new("fleet", "robot1").expect("valid")
    }

    fn allowed(claims: &Claims, path: &str) -> (bool, bool) {
        match claims.authorize(path) {
            Ok(p) => (
                p.subscribe.iter().any(|pat| pat.matches("")),
                p.publish.iter().any(|pat| pat.matches("")),
            ),
            Err(_) => (false, false),
        }
    }

    #[test]
    fn a_client_token_subscribes_to_its_devices_and_publishes_only_its_commands() {
        let g = Grants {
            subscribe: Grants::device_list("cam0, can0"),
            publish: vec!["can0".into()],
            client: Some("op1".into()),
            robot: false,
        };
        let c = g.claims(&paths()).expect("claims");
        assert_eq!(allowed(&c, "fleet/robot1/cam0"), (true, false));
        assert_eq!(allowed(&c, "fleet/robot1/can0"), (true, false));
        assert_eq!(allowed(&c, "fleet/robot1/can0/w/op1"), (false, true));
        assert_eq!(allowed(&c, "fleet/robot1/can0/r/op1"), (true, false));
        assert_eq!(allowed(&c, "fleet/robot1/can0/r/op2"), (false, false));
        assert_eq!(allowed(&c, "fleet/robot1/cam0/r/op1"), (false, false));
        assert_eq!(allowed(&c, "fleet/robot1/can0/w/op2"), (false, false));
        assert_eq!(allowed(&c, "fleet/robot1/cam0/w/op1"), (false, false));
        assert_eq!(allowed(&c, "fleet/robot1/tty0"), (false, false));
        assert_eq!(allowed(&c, "fleet/robot2/cam0"), (false, false));
    }

    #[test]
    fn a_mounter_reads_its_writer_name_and_devices_from_its_token() {
        let key = Key::generate(Algorithm::EdDSA, None).expect("key");
        let g = Grants {
            subscribe: Grants::device_list("cam0"),
            publish: Grants::device_list("can0,tty0"),
            client: Some("op1".into()),
            robot: false,
        };
        let t = mint(&key, &paths(), &g, Duration::from_secs(60)).expect("mint");
        let w = claimed_writes(&t, &paths())
            .expect("decodes")
            .expect("writes");
        assert_eq!(w.client, "op1");
        assert_eq!(w.devices, vec!["can0".to_string(), "tty0".to_string()]);
        let watch = Grants {
            subscribe: Grants::device_list("cam0"),
            ..Grants::default()
        };
        let t = mint(&key, &paths(), &watch, Duration::from_secs(60)).expect("mint");
        assert_eq!(claimed_writes(&t, &paths()).expect("decodes"), None);
        let other = RelayPaths::new("fleet", "robot2").expect("valid");
        assert!(matches!(
            claimed_writes(&t, &other),
            Err(TokenError::WrongRoot { .. })
        ));
        for junk in ["", "a.b", "a.b.c", "a.!!.c", "x.e30.y.z"] {
            assert!(claimed_writes(junk, &paths()).is_err(), "{junk}");
        }
    }

    #[test]
    fn a_robot_token_publishes_its_root_and_reads_only_commands() {
        let g = Grants {
            robot: true,
            ..Grants::default()
        };
        let c = g.claims(&paths()).expect("claims");
        assert_eq!(allowed(&c, "fleet/robot1/cam0"), (false, true));
        assert_eq!(allowed(&c, "fleet/robot1/can0/w/op1"), (true, true));
        assert_eq!(allowed(&c, "fleet/robot2/cam0"), (false, false));
    }

    #[test]
    fn useless_or_malformed_grants_are_refused() {
        assert!(matches!(
            Grants::default().claims(&paths()),
            Err(TokenError::Empty)
        ));
        let no_client = Grants {
            publish: vec!["can0".into()],
            ..Grants::default()
        };
        assert!(matches!(
            no_client.claims(&paths()),
            Err(TokenError::NoClient)
        ));
        for bad in ["**", "*", "a/b", "../x", ""] {
            let g = Grants {
                subscribe: vec![bad.into()],
                ..Grants::default()
            };
            assert!(g.claims(&paths()).is_err(), "{bad:?}");
        }
        let bad_client = Grants {
            publish: vec!["can0".into()],
            client: Some("*".into()),
            ..Grants::default()
        };
        assert!(bad_client.claims(&paths()).is_err());
    }

    #[test]
    fn a_cluster_token_covers_the_prefix_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (private, public) = (dir.path().join("k.jwk"), dir.path().join("k.pub.jwk"));
        generate_key(&private, &public).expect("key");
        let key = Key::from_file(&private).expect("private");
        let t = mint_cluster(&key, "fleet", Duration::from_secs(60)).expect("mint");
        let c = Key::from_file(&public)
            .expect("public")
            .verify(&t)
            .expect("verifies");
        assert_eq!(c.root, "fleet");
        assert_eq!(allowed(&c, "fleet/robot1/can0"), (true, true));
        assert_eq!(allowed(&c, "other/robot1/can0"), (false, false));
        assert!(mint_cluster(&key, "../x", Duration::from_secs(60)).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("7d").ok(),
            Some(Duration::from_secs(7 * 86_400))
        );
        for bad in [
            "",
            "h",
            "1",
            "1y",
            "-1h",
            "0s",
            "400d",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn minted_tokens_verify_with_the_public_half_and_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (private, public) = (dir.path().join("k.jwk"), dir.path().join("k.pub.jwk"));
        generate_key(&private, &public).expect("key");
        let key = Key::from_file(&private).expect("private");
        let verifier = Key::from_file(&public).expect("public");
        let g = Grants {
            subscribe: vec!["cam0".into()],
            ..Grants::default()
        };
        let token = mint(&key, &paths(), &g, Duration::from_secs(60)).expect("mint");
        let claims = verifier.verify(&token).expect("verifies");
        assert_eq!(claims.root, "fleet/robot1");
        // The public half cannot sign.
        assert!(mint(&verifier, &paths(), &g, Duration::from_secs(60)).is_err());
    }
}
