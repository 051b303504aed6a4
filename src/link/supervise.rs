//! One bind's life: connect (TCP or TLS as configured, DNS resolved on every
//! attempt), bind, run the session, and on any failure classify it and wait
//! per [`Reconnect`] before trying again. Credential rejections park the
//! bind as `auth_failed` and retry slowly; ESME_RALYBND waits at least the
//! carrier's timeout; the backoff resets only after a bound session.
//! `link_up` / `link_down` go to the event log and the metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::{CarrierConfig, Config, StatusAction};
use crate::model::EventKind;
use crate::session::driver::{BindConfig, BindError, DriverConfig, TlsTarget, connect_and_bind};
use crate::session::machine::{BindParams, SessionConfig};
use crate::session::state::BindKind;
use crate::session::status::{
    BindClass, BindDiagnosis, Outcome, StatusTable, classify_bind_failure,
};
use crate::session::throttle::ThrottleConfig;
use crate::store::Store;

use super::backoff::{BackoffPolicy, Reconnect, ReconnectPolicies};
use super::outbox;
use super::pool::{BindSlot, BindState, LinkOptions, Shared};

/// The reconnect policies of a carrier, from its config.
pub fn policies(c: &CarrierConfig) -> ReconnectPolicies {
    let min = c.reconnect_min.max(Duration::from_millis(1));
    let max = c.reconnect_max.max(min);
    let auth = c.auth_failure_retry.max(Duration::from_millis(1));
    ReconnectPolicies {
        connect: BackoffPolicy {
            initial: min,
            max,
            ..BackoffPolicy::CONNECT
        },
        auth: BackoffPolicy {
            initial: auth,
            max: auth * 2,
            floor: auth.mul_f64(0.8),
            ..BackoffPolicy::AUTH
        },
        already_bound: BackoffPolicy::already_bound(c.already_bound_wait),
        bind_failed: BackoffPolicy {
            initial: max,
            max: max * 15,
            floor: min,
            ..BackoffPolicy::BIND_FAILED
        },
    }
}

/// The session settings of a bind of `kind` on carrier `c`.
pub fn session_config(c: &CarrierConfig, kind: BindKind) -> SessionConfig {
    let mut bind = BindParams::new(kind, c.system_id.clone(), c.password.expose());
    bind.system_type = c.system_type.clone();
    if kind != BindKind::Transmitter {
        bind.address_range = c.address_range.clone();
    }
    let overrides: HashMap<u32, Outcome> = c
        .status
        .iter()
        .map(|(s, a)| {
            let o = match a {
                StatusAction::Temporary => Outcome::Temporary,
                StatusAction::Permanent => Outcome::Permanent {
                    configuration: false,
                },
                StatusAction::Rebind => Outcome::Rebind,
            };
            (*s, o)
        })
        .collect();
    let mut s = SessionConfig::new(bind);
    s.window = c.window.max(1) as usize;
    s.response_timeout = c.response_timeout;
    s.bind_timeout = c.bind_timeout;
    s.enquire_link_interval = c.enquire_link;
    s.enquire_link_timeout = c.enquire_link_timeout;
    s.inactivity_timeout = c.inactivity;
    // A shutdown must fit the daemon's grace period: the window gets at
    // most 10 s to drain before the unbind goes out.
    s.drain_timeout = c.response_timeout.min(Duration::from_secs(10));
    s.unbind_timeout = c.unbind_timeout;
    s.throttle = ThrottleConfig {
        tps: (c.tps > 0).then_some(f64::from(c.tps)),
        ..ThrottleConfig::default()
    };
    s.status_table = StatusTable::new(overrides);
    s
}

/// Where and how a bind of `kind` connects. TLS comes only from the
/// carrier's `tls` table, never from the port.
///
/// # Errors
/// The TLS settings cannot be loaded (unreadable CA or client certificate,
/// bad server name): a configuration problem, reported as the bind's error.
pub fn bind_config(c: &CarrierConfig, kind: BindKind) -> Result<BindConfig, String> {
    let tls = match &c.tls {
        None => None,
        Some(t) => {
            let config = crate::tls::client_config(
                t.ca.as_deref(),
                t.client_cert.as_deref(),
                t.client_key.as_deref(),
            )
            .map_err(|e| format!("tls settings unusable: {e}"))?;
            let server_name = crate::tls::server_name(&c.host, t.server_name.as_deref())
                .map_err(|e| format!("tls settings unusable: {e}"))?;
            Some(TlsTarget {
                config,
                server_name,
            })
        }
    };
    Ok(BindConfig {
        host: c.host.clone(),
        port: c.port,
        tls,
        session: session_config(c, kind),
        driver: DriverConfig {
            connect_timeout: c.connect_timeout,
            tls_handshake_timeout: c.connect_timeout,
            max_pdu_len: c.max_pdu_bytes,
            local_address: c.local_address,
            ..DriverConfig::default()
        },
    })
}

/// The fixed `reason` label of [`crate::metrics::bind_failed`].
fn metric_reason(d: &BindDiagnosis) -> &'static str {
    match (d.class, d.reason) {
        (BindClass::Auth, _) => "auth",
        (BindClass::AlreadyBound, _) => "already_bound",
        (_, "bind_failed") => "bind_fail",
        (_, "connect_refused") => "connect_refused",
        (_, "connect_failed" | "local_address") => "connect_failed",
        (_, "tls_failed") => "tls",
        (_, "connect_timeout" | "bind_resp_timeout") => "timeout",
        (_, "reset_before_bind_resp") => "io",
        _ => "other",
    }
}

/// One bind's task (spawned by [`super::pool::Links::start_with`]).
pub(crate) struct BindTask<S> {
    pub(crate) store: Arc<S>,
    pub(crate) cfg: Arc<Config>,
    /// Index of the carrier in `cfg.carriers`.
    pub(crate) carrier: usize,
    pub(crate) slot: Arc<BindSlot>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) opts: Arc<LinkOptions>,
    pub(crate) stop: CancellationToken,
    /// Jitter seed.
    pub(crate) seed: u64,
}

impl<S: Store> BindTask<S> {
    /// Runs until the stop token is cancelled.
    pub(crate) async fn run(self) {
        let Some(carrier) = self.cfg.carriers.get(self.carrier).cloned() else {
            return;
        };
        let name = self.slot.name();
        let mut reconnect = Reconnect::new(policies(&carrier), self.seed);
        // The reason of the last failure already reported as link_down, so
        // a bind that keeps failing the same way logs one event, not one per try.
        let mut reported: Option<&'static str> = None;
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            self.slot.set_state(BindState::Connecting, None, None);
            self.slot.attempt();
            let bc = match bind_config(&carrier, self.slot.kind) {
                Ok(bc) => bc,
                Err(detail) => {
                    tracing::error!(carrier = %carrier.name, bind = %name, %detail, "bind not attempted");
                    let d = reconnect.on_failure(BindClass::Misconfigured);
                    self.back_off(BindState::Backoff, detail, d).await;
                    continue;
                }
            };
            let attempt = tokio::select! {
                r = connect_and_bind(&bc) => r,
                () = self.stop.cancelled() => break,
            };
            match attempt {
                Ok(handle) => {
                    reconnect.on_bound();
                    reported = None;
                    self.slot.set_state(BindState::Bound, None, None);
                    self.shared.report_receiving(&carrier.name);
                    tracing::info!(carrier = %carrier.name, bind = %name, peer = handle.peer_system_id(), "bound");
                    self.event(EventKind::LinkUp {
                        carrier: carrier.name.clone(),
                        bind: name.clone(),
                        reason: None,
                    })
                    .await;
                    let ctx = outbox::SessionCtx {
                        store: self.store.clone(),
                        cfg: self.shared.config.borrow().clone(),
                        config: self.shared.config.subscribe(),
                        carrier: carrier.clone(),
                        slot: self.slot.clone(),
                        wake: self.shared.wake.subscribe(),
                        opts: self.opts.clone(),
                        stop: self.stop.clone(),
                    };
                    let reason = outbox::run_session(ctx, handle).await;
                    self.shared.report_receiving(&carrier.name);
                    tracing::warn!(carrier = %carrier.name, bind = %name, %reason, "session ended");
                    self.event(EventKind::LinkDown {
                        carrier: carrier.name.clone(),
                        bind: name.clone(),
                        reason: Some(reason.clone()),
                    })
                    .await;
                    if self.stop.is_cancelled() {
                        break;
                    }
                    let d = reconnect.on_failure(BindClass::Transient);
                    self.back_off(BindState::Backoff, reason, d).await;
                }
                Err(e) => {
                    let mut diag = classify_bind_failure(e.failure());
                    if let BindError::LocalAddress { .. } = e {
                        // Not the carrier's doing: say what to fix here.
                        diag.reason = "local_address";
                        diag.detail = format!(
                            "{e}: local_address must be an address of this host, of the carrier host's family"
                        );
                    }
                    crate::metrics::bind_failed(&carrier.name, metric_reason(&diag));
                    let state = if diag.class == BindClass::Auth {
                        tracing::error!(carrier = %carrier.name, bind = %name, detail = %diag.detail, "credentials rejected; bind parked");
                        BindState::AuthFailed
                    } else {
                        tracing::warn!(carrier = %carrier.name, bind = %name, error = %e, detail = %diag.detail, "bind failed");
                        BindState::Backoff
                    };
                    if reported != Some(diag.reason) {
                        reported = Some(diag.reason);
                        self.event(EventKind::LinkDown {
                            carrier: carrier.name.clone(),
                            bind: name.clone(),
                            reason: Some(diag.reason.to_owned()),
                        })
                        .await;
                    }
                    let d = reconnect.on_failure(diag.class);
                    self.back_off(state, diag.detail, d).await;
                }
            }
        }
        self.slot.set_state(BindState::Stopped, None, None);
        self.shared.report_receiving(&carrier.name);
    }

    /// Shows `state` with `error` and waits `delay` (or until stopped).
    async fn back_off(&self, state: BindState, error: String, delay: Duration) {
        let retry_at = clock::wall_ms().saturating_add(delay.as_millis() as u64);
        self.slot.set_state(state, Some(error), Some(retry_at));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Appends a link event; a store failure is logged, never fatal here.
    async fn event(&self, kind: EventKind) {
        if let Err(e) = self.store.append_event(kind, clock::wall_ms()).await {
            tracing::error!(error = %e, "link event not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::status::BindFailure;

    fn carrier() -> CarrierConfig {
        let dir = std::env::temp_dir();
        let addr = "127.0.0.1:2775".parse().unwrap();
        let cfg = crate::config::demo(&dir, addr, None).unwrap();
        cfg.carriers[0].clone()
    }

    #[test]
    fn policies_follow_the_carrier_timeouts_and_are_valid() {
        let mut c = carrier();
        c.reconnect_min = Duration::from_millis(50);
        c.reconnect_max = Duration::from_millis(400);
        c.auth_failure_retry = Duration::from_secs(2);
        c.already_bound_wait = Duration::from_secs(3);
        let p = policies(&c);
        for pol in [p.connect, p.auth, p.already_bound, p.bind_failed] {
            assert_eq!(pol.validate(), Ok(()), "{pol:?}");
        }
        assert_eq!(p.connect.delay(0, 0.0), Duration::from_millis(50));
        assert!(p.auth.delay(0, 0.999) >= Duration::from_millis(1600));
        assert!(p.already_bound.delay(0, 0.999) >= Duration::from_secs(3));
    }

    #[test]
    fn session_config_carries_carrier_settings_and_status_overrides() {
        let mut c = carrier();
        c.window = 7;
        c.status.insert(0x45, StatusAction::Temporary);
        let s = session_config(&c, BindKind::Transmitter);
        assert_eq!(s.window, 7);
        assert_eq!(s.bind.address_range, "");
        assert_eq!(s.status_table.classify(0x45), Outcome::Temporary);
        assert_eq!(s.status_table.classify(0x58), Outcome::Throttled);
        assert_eq!(s.bind.password, c.password.expose());
    }

    #[test]
    fn plain_carrier_never_gets_tls_whatever_the_port() {
        let mut c = carrier();
        c.port = 3550;
        let bc = bind_config(&c, BindKind::Transceiver).unwrap();
        assert!(bc.tls.is_none());
    }

    #[test]
    fn bind_failure_reasons_map_to_metric_labels() {
        let r = |f| metric_reason(&classify_bind_failure(f));
        assert_eq!(r(BindFailure::Status(0x0E)), "auth");
        assert_eq!(r(BindFailure::Status(0x05)), "already_bound");
        assert_eq!(r(BindFailure::Status(0x0D)), "bind_fail");
        assert_eq!(r(BindFailure::ConnectRefused), "connect_refused");
        assert_eq!(r(BindFailure::ConnectFailed), "connect_failed");
        assert_eq!(r(BindFailure::Tls), "tls");
        assert_eq!(r(BindFailure::BindRespTimeout), "timeout");
        assert_eq!(r(BindFailure::ResetBeforeBindResp), "io");
    }
}
