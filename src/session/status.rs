//! What a carrier's `command_status` means for us: a submit response sorted
//! into [`Outcome`]s (with per-carrier overrides), and a failed bind sorted
//! into [`BindClass`]es with a reason an operator can act on.
//!
//! Defaults follow CARRIERS.md §1 and §2 (Kannel and RestComm tables): 0x14,
//! 0x58, 0x64 and 0x08 are temporary, 0x04 means rebind, 0x0A/0x48/0x49 are
//! permanent configuration errors of the service, everything else is a
//! permanent reject. Statuses are plain `u32` here; the codec's
//! `CommandStatus` wraps one.
//!
//! Pure: no I/O, no clock.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// `ESME_ROK`.
pub const ESME_ROK: u32 = 0x00;
/// `ESME_RINVBNDSTS`: incorrect bind status for the command.
pub const ESME_RINVBNDSTS: u32 = 0x04;
/// `ESME_RALYBND`: already in bound state.
pub const ESME_RALYBND: u32 = 0x05;
/// `ESME_RSYSERR`: system error.
pub const ESME_RSYSERR: u32 = 0x08;
/// `ESME_RINVSRCADR`: invalid source address.
pub const ESME_RINVSRCADR: u32 = 0x0A;
/// `ESME_RBINDFAIL`: bind failed.
pub const ESME_RBINDFAIL: u32 = 0x0D;
/// `ESME_RINVPASWD`: invalid password.
pub const ESME_RINVPASWD: u32 = 0x0E;
/// `ESME_RINVSYSID`: invalid system_id.
pub const ESME_RINVSYSID: u32 = 0x0F;
/// `ESME_RMSGQFUL`: message queue full.
pub const ESME_RMSGQFUL: u32 = 0x14;
/// `ESME_RINVSRCTON`: invalid source address TON.
pub const ESME_RINVSRCTON: u32 = 0x48;
/// `ESME_RINVSRCNPI`: invalid source address NPI.
pub const ESME_RINVSRCNPI: u32 = 0x49;
/// `ESME_RINVSYSTYP`: invalid system_type.
pub const ESME_RINVSYSTYP: u32 = 0x53;
/// `ESME_RTHROTTLED`: throttling error (too fast).
pub const ESME_RTHROTTLED: u32 = 0x58;
/// `ESME_RX_T_APPN`: temporary application error.
pub const ESME_RX_T_APPN: u32 = 0x64;

/// What to do with a message after its submit response (or generic_nack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted by the SMSC.
    Ok,
    /// Failed for now; retry later (limited retries).
    Temporary,
    /// Rejected for good. `configuration` is true when the service's own
    /// setup is at fault (sender not allowed, wrong TON/NPI): alert the
    /// operator instead of treating it as a bad message.
    Permanent {
        /// The service's configuration is the likely cause.
        configuration: bool,
    },
    /// The bind is not usable (RINVBNDSTS): drop it, rebind, send again.
    Rebind,
    /// ESME_RTHROTTLED: pause the bind, keep the message at the head.
    Throttled,
    /// ESME_RMSGQFUL: the SMSC (or the handset's queue) is full: back off.
    QueueFull,
}

impl Outcome {
    /// The message can be sent again later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Outcome::Temporary | Outcome::Rebind | Outcome::Throttled | Outcome::QueueFull
        )
    }

    /// Stable lowercase name, the same one [`Outcome::from_str`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Temporary => "temporary",
            Outcome::Permanent {
                configuration: false,
            } => "permanent",
            Outcome::Permanent {
                configuration: true,
            } => "configuration",
            Outcome::Rebind => "rebind",
            Outcome::Throttled => "throttled",
            Outcome::QueueFull => "queue_full",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An override name in carrier config that is not an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status outcome {0:?} (expected ok, temporary, permanent, configuration, rebind, throttled or queue_full)"
)]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ok" => Outcome::Ok,
            "temporary" => Outcome::Temporary,
            "permanent" => Outcome::Permanent {
                configuration: false,
            },
            "configuration" => Outcome::Permanent {
                configuration: true,
            },
            "rebind" => Outcome::Rebind,
            "throttled" => Outcome::Throttled,
            "queue_full" => Outcome::QueueFull,
            other => return Err(UnknownOutcome(other.to_owned())),
        })
    }
}

/// The default meaning of a submit status, before carrier overrides.
pub fn default_outcome(status: u32) -> Outcome {
    match status {
        ESME_ROK => Outcome::Ok,
        ESME_RTHROTTLED => Outcome::Throttled,
        ESME_RMSGQFUL => Outcome::QueueFull,
        ESME_RSYSERR | ESME_RX_T_APPN => Outcome::Temporary,
        ESME_RINVBNDSTS => Outcome::Rebind,
        ESME_RINVSRCADR | ESME_RINVSRCTON | ESME_RINVSRCNPI => Outcome::Permanent {
            configuration: true,
        },
        _ => Outcome::Permanent {
            configuration: false,
        },
    }
}

/// A carrier's status table: the defaults plus its overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusTable {
    /// status → outcome, consulted before the defaults.
    overrides: HashMap<u32, Outcome>,
}

impl StatusTable {
    /// The defaults with `overrides` on top (from carrier config).
    pub fn new(overrides: HashMap<u32, Outcome>) -> Self {
        StatusTable { overrides }
    }

    /// The outcome of a submit_sm_resp or generic_nack carrying `status`.
    pub fn classify(&self, status: u32) -> Outcome {
        self.overrides
            .get(&status)
            .copied()
            .unwrap_or_else(|| default_outcome(status))
    }
}

// ===== bind failures =====

/// Why a bind attempt failed, as the shell saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindFailure {
    /// The bind_resp (or a generic_nack answering the bind) carried this
    /// error status.
    Status(u32),
    /// TCP connect was refused.
    ConnectRefused,
    /// The TCP connection could not be opened for another reason: the host
    /// name did not resolve, the network or host is unreachable.
    ConnectFailed,
    /// TCP connect (or the TLS handshake) did not finish in time.
    ConnectTimeout,
    /// The TLS handshake failed (certificate, hostname, protocol).
    Tls,
    /// The connection closed or reset before the bind_resp arrived.
    ResetBeforeBindResp,
    /// No bind_resp within the bind timeout.
    BindRespTimeout,
}

/// How the link should react to a failed bind; each class has its own
/// backoff policy in [`crate::link::backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindClass {
    /// Bad credentials or system_type: park the link, alert, retry slowly.
    Auth,
    /// ESME_RALYBND: the SMSC still holds an old session (or the account's
    /// session limit is reached): wait at least the carrier's timeout.
    AlreadyBound,
    /// ESME_RBINDFAIL or a TLS failure: misconfiguration likely, long backoff.
    Misconfigured,
    /// Network trouble or an SMSC-side fault: normal capped backoff.
    Transient,
}

impl BindClass {
    /// Stable lowercase state name for metrics and the socket's `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            BindClass::Auth => "auth_failed",
            BindClass::AlreadyBound => "already_bound",
            BindClass::Misconfigured => "bind_failed",
            BindClass::Transient => "retrying",
        }
    }
}

/// A classified bind failure with a reason for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindDiagnosis {
    /// Which reaction (and backoff policy) applies.
    pub class: BindClass,
    /// Short stable reason for logs and metrics labels (`connect_refused`).
    pub reason: &'static str,
    /// One sentence an operator can act on.
    pub detail: String,
}

/// Sorts a failed bind (CARRIERS.md §1, §6).
pub fn classify_bind_failure(failure: BindFailure) -> BindDiagnosis {
    let (class, reason, detail) = match failure {
        BindFailure::Status(s @ (ESME_RINVPASWD | ESME_RINVSYSID | ESME_RINVSYSTYP)) => {
            let what = match s {
                ESME_RINVPASWD => "password",
                ESME_RINVSYSID => "system_id",
                _ => "system_type",
            };
            (
                BindClass::Auth,
                "auth_failed",
                format!(
                    "the carrier rejected the {what} (status 0x{s:08X}); link parked, check the credentials and reload"
                ),
            )
        }
        BindFailure::Status(ESME_RALYBND) => (
            BindClass::AlreadyBound,
            "already_bound",
            "the carrier says this account is already bound (status 0x00000005): an old session is still held or the session limit is reached; waiting for the carrier's timeout".to_owned(),
        ),
        BindFailure::Status(ESME_RBINDFAIL) => (
            BindClass::Misconfigured,
            "bind_failed",
            "the carrier refused the bind (status 0x0000000D): check that our source IP is on the carrier's allow-list, the port and that the account is provisioned".to_owned(),
        ),
        BindFailure::Status(ESME_RSYSERR) => (
            BindClass::Transient,
            "carrier_error",
            "the carrier reported a system error during bind (status 0x00000008); retrying".to_owned(),
        ),
        BindFailure::Status(s) => (
            BindClass::Transient,
            "bind_rejected",
            format!("the carrier rejected the bind with status 0x{s:08X}; retrying"),
        ),
        BindFailure::ConnectRefused => (
            BindClass::Transient,
            "connect_refused",
            "the carrier host refused the TCP connection: wrong host or port, or the SMSC is down".to_owned(),
        ),
        BindFailure::ConnectFailed => (
            BindClass::Transient,
            "connect_failed",
            "the TCP connection could not be opened (host name not resolved, network or host unreachable): check the carrier host and the route to it".to_owned(),
        ),
        BindFailure::ConnectTimeout => (
            BindClass::Transient,
            "connect_timeout",
            "no TCP/TLS connection within the connect timeout: network path or firewall".to_owned(),
        ),
        BindFailure::Tls => (
            BindClass::Misconfigured,
            "tls_failed",
            "the TLS handshake failed: check the CA, the server name and the client certificate".to_owned(),
        ),
        BindFailure::ResetBeforeBindResp => (
            BindClass::Transient,
            "reset_before_bind_resp",
            "the carrier closed the connection before answering the bind: often an IP allow-list or a plain/TLS mismatch".to_owned(),
        ),
        BindFailure::BindRespTimeout => (
            BindClass::Transient,
            "bind_resp_timeout",
            "no bind_resp within the bind timeout: the SMSC is overloaded or expects TLS".to_owned(),
        ),
    };
    BindDiagnosis {
        class,
        reason,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_submit_statuses_follow_carriers_table() {
        let t = StatusTable::default();
        assert_eq!(t.classify(0x00), Outcome::Ok);
        assert_eq!(t.classify(0x58), Outcome::Throttled);
        assert_eq!(t.classify(0x14), Outcome::QueueFull);
        assert_eq!(t.classify(0x64), Outcome::Temporary);
        assert_eq!(t.classify(0x08), Outcome::Temporary);
        assert_eq!(t.classify(0x04), Outcome::Rebind);
        for s in [0x0A, 0x48, 0x49] {
            assert_eq!(
                t.classify(s),
                Outcome::Permanent {
                    configuration: true
                }
            );
        }
        for s in [0x0B, 0x45, 0x61, 0x62, 0x400, 0xFFFF_FFFF] {
            assert_eq!(
                t.classify(s),
                Outcome::Permanent {
                    configuration: false
                },
                "status {s:#x}"
            );
        }
    }

    #[test]
    fn temporary_kinds_are_retryable_permanent_are_not() {
        assert!(Outcome::Throttled.is_retryable());
        assert!(Outcome::QueueFull.is_retryable());
        assert!(Outcome::Rebind.is_retryable());
        assert!(!Outcome::Ok.is_retryable());
        assert!(
            !Outcome::Permanent {
                configuration: true
            }
            .is_retryable()
        );
    }

    #[test]
    fn carrier_override_wins_over_default() {
        let t = StatusTable::new(HashMap::from([
            (0x45, Outcome::Temporary),
            (
                0x58,
                Outcome::Permanent {
                    configuration: false,
                },
            ),
        ]));
        assert_eq!(t.classify(0x45), Outcome::Temporary);
        assert_eq!(
            t.classify(0x58),
            Outcome::Permanent {
                configuration: false
            }
        );
        assert_eq!(t.classify(0x14), Outcome::QueueFull);
    }

    #[test]
    fn can_round_trip_outcome_names() {
        for o in [
            Outcome::Ok,
            Outcome::Temporary,
            Outcome::Permanent {
                configuration: false,
            },
            Outcome::Permanent {
                configuration: true,
            },
            Outcome::Rebind,
            Outcome::Throttled,
            Outcome::QueueFull,
        ] {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert!("retry".parse::<Outcome>().is_err());
    }

    #[test]
    fn bad_credentials_park_the_link() {
        for s in [0x0E, 0x0F, 0x53] {
            let d = classify_bind_failure(BindFailure::Status(s));
            assert_eq!(d.class, BindClass::Auth);
            assert_eq!(d.reason, "auth_failed");
        }
        assert!(
            classify_bind_failure(BindFailure::Status(0x0E))
                .detail
                .contains("password")
        );
    }

    #[test]
    fn already_bound_and_bind_fail_are_distinct() {
        let a = classify_bind_failure(BindFailure::Status(0x05));
        assert_eq!(a.class, BindClass::AlreadyBound);
        let b = classify_bind_failure(BindFailure::Status(0x0D));
        assert_eq!(b.class, BindClass::Misconfigured);
        assert!(b.detail.contains("allow-list"));
    }

    #[test]
    fn network_failures_have_distinct_reasons() {
        let reasons: Vec<_> = [
            BindFailure::ConnectRefused,
            BindFailure::ConnectFailed,
            BindFailure::ConnectTimeout,
            BindFailure::ResetBeforeBindResp,
            BindFailure::BindRespTimeout,
            BindFailure::Status(0x08),
        ]
        .into_iter()
        .map(|f| {
            let d = classify_bind_failure(f);
            assert_eq!(d.class, BindClass::Transient);
            d.reason
        })
        .collect();
        let mut dedup = reasons.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), reasons.len());
    }

    #[test]
    fn unknown_bind_status_is_transient_with_the_status_shown() {
        let d = classify_bind_failure(BindFailure::Status(0x0000_0401));
        assert_eq!(d.class, BindClass::Transient);
        assert!(d.detail.contains("0x00000401"));
    }
}
