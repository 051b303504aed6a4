//! Bind states and the SMPP 3.4 operation matrix (section 2.3, table 2-1)
//! per role: which requests each side may send and receive in each state.
//!
//! The session machine asks [`Role::on_receive`] before it looks at a
//! request's body; a request that is not allowed in the current state is
//! answered with `ESME_RINVBNDSTS` (or `ESME_RALYBND` for a second bind), an
//! unknown `command_id` with `generic_nack` `ESME_RINVCMDID`. All role
//! differences live here so the machine itself stays one piece of code.

use crate::pdu::{CommandId, CommandStatus};

/// How a session is bound: which directions of traffic it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// `bind_transmitter`: the ESME submits, nothing is delivered to it.
    Transmitter,
    /// `bind_receiver`: the MC delivers, the ESME cannot submit.
    Receiver,
    /// `bind_transceiver`: both directions on one session.
    Transceiver,
}

impl BindKind {
    /// The bind request that asks for this kind.
    pub fn bind_command(self) -> CommandId {
        match self {
            BindKind::Transmitter => CommandId::BIND_TRANSMITTER,
            BindKind::Receiver => CommandId::BIND_RECEIVER,
            BindKind::Transceiver => CommandId::BIND_TRANSCEIVER,
        }
    }

    /// The kind a bind request (or its response) asks for, if it is one.
    pub fn from_command(id: CommandId) -> Option<BindKind> {
        match CommandId(id.0 & 0x7FFF_FFFF) {
            CommandId::BIND_TRANSMITTER => Some(BindKind::Transmitter),
            CommandId::BIND_RECEIVER => Some(BindKind::Receiver),
            CommandId::BIND_TRANSCEIVER => Some(BindKind::Transceiver),
            _ => None,
        }
    }

    /// Whether the ESME may submit on this bind (ESME → MC messages).
    pub fn transmits(self) -> bool {
        matches!(self, BindKind::Transmitter | BindKind::Transceiver)
    }

    /// Whether the MC may deliver on this bind (MC → ESME messages).
    pub fn receives(self) -> bool {
        matches!(self, BindKind::Receiver | BindKind::Transceiver)
    }

    /// Lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BindKind::Transmitter => "transmitter",
            BindKind::Receiver => "receiver",
            BindKind::Transceiver => "transceiver",
        }
    }
}

/// The state of one session, named for what it expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected, not bound. The ESME is about to send its bind; the MC
    /// expects one.
    Open,
    /// ESME only: the bind went out, the bind_resp is awaited.
    ExpectBindResp(BindKind),
    /// Bound: traffic flows in the directions `BindKind` allows.
    Bound(BindKind),
    /// A local unbind was asked for: no new requests are taken, the window
    /// drains (under a deadline) before `unbind` goes out. Incoming traffic is
    /// still handled.
    Draining(BindKind),
    /// `unbind` went out; `unbind_resp` (or the peer closing) is awaited.
    ExpectUnbindResp(BindKind),
    /// The session is over; only queued output may still be flushed.
    Closed,
}

impl State {
    /// The bind kind while bound, draining or unbinding.
    pub fn bound_kind(self) -> Option<BindKind> {
        match self {
            State::Bound(k) | State::Draining(k) | State::ExpectUnbindResp(k) => Some(k),
            State::Open | State::ExpectBindResp(_) | State::Closed => None,
        }
    }

    /// Lowercase name for logs, metrics and the `status` answer.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::ExpectBindResp(_) => "binding",
            State::Bound(_) => "bound",
            State::Draining(_) => "draining",
            State::ExpectUnbindResp(_) => "unbinding",
            State::Closed => "closed",
        }
    }
}

/// Which end of the bind a session plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The External Short Message Entity: the gateway itself.
    Esme,
    /// The Message Centre (the carrier's SMSC): the simulator.
    Mc,
}

/// What to do with an incoming request in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed: parse the body and handle it.
    Accept,
    /// A known request this side may not receive now: answer its `*_resp`
    /// (or `generic_nack` when it has none) with this status, same sequence
    /// number, header only.
    Reject(CommandStatus),
    /// A known request that has no response (`outbind`,
    /// `alert_notification`) arriving where it makes no sense: drop it and
    /// report it.
    Ignore,
    /// Not a request SMPP 3.4 defines: `generic_nack` with `ESME_RINVCMDID`.
    Unknown,
}

/// Every request `command_id` SMPP 3.4 defines.
pub fn is_known_request(id: CommandId) -> bool {
    matches!(
        id,
        CommandId::BIND_TRANSMITTER
            | CommandId::BIND_RECEIVER
            | CommandId::BIND_TRANSCEIVER
            | CommandId::QUERY_SM
            | CommandId::SUBMIT_SM
            | CommandId::DELIVER_SM
            | CommandId::UNBIND
            | CommandId::REPLACE_SM
            | CommandId::CANCEL_SM
            | CommandId::OUTBIND
            | CommandId::ENQUIRE_LINK
            | CommandId::SUBMIT_MULTI
            | CommandId::ALERT_NOTIFICATION
            | CommandId::DATA_SM
    )
}

/// Whether a request has a `*_resp` PDU (all but `outbind` and
/// `alert_notification`).
pub fn has_response(id: CommandId) -> bool {
    !matches!(id, CommandId::OUTBIND | CommandId::ALERT_NOTIFICATION)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Esme {}
    impl Sealed for super::Mc {}
}

/// The role a [`Session`](super::machine::Session) plays: [`Esme`] or
/// [`Mc`]. Sealed: the operation matrix of SMPP 3.4 knows only these two.
pub trait Role: sealed::Sealed + std::fmt::Debug + Send + 'static {
    /// Which side this is.
    const SIDE: Side;

    /// Whether this side may receive request `id` in `state`.
    fn on_receive(state: State, id: CommandId) -> Verdict;

    /// Whether this side may send request `id` in `state`.
    fn may_send(state: State, id: CommandId) -> bool;
}

/// The ESME role: the gateway's side of a carrier bind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Esme;

/// The MC role: the carrier's side, played by the simulator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mc;

/// Requests both sides may receive whatever the bind kind is, once bound;
/// `enquire_link` is answered in any state short of closed (some SMSCs send
/// it before the bind completes: answer it, but it proves nothing).
fn common_receive(state: State, id: CommandId) -> Option<Verdict> {
    match id {
        CommandId::ENQUIRE_LINK => Some(match state {
            State::Closed => Verdict::Reject(CommandStatus::RINVBNDSTS),
            _ => Verdict::Accept,
        }),
        CommandId::UNBIND => Some(match state.bound_kind() {
            Some(_) => Verdict::Accept,
            None => Verdict::Reject(CommandStatus::RINVBNDSTS),
        }),
        _ if !is_known_request(id) => Some(Verdict::Unknown),
        _ => None,
    }
}

fn wrong_state(id: CommandId) -> Verdict {
    if has_response(id) {
        Verdict::Reject(CommandStatus::RINVBNDSTS)
    } else {
        Verdict::Ignore
    }
}

impl Role for Esme {
    const SIDE: Side = Side::Esme;

    fn on_receive(state: State, id: CommandId) -> Verdict {
        if let Some(v) = common_receive(state, id) {
            return v;
        }
        match id {
            // MC → ESME messages need a receiving bind.
            CommandId::DELIVER_SM | CommandId::DATA_SM | CommandId::ALERT_NOTIFICATION => {
                match state.bound_kind() {
                    Some(k) if k.receives() => Verdict::Accept,
                    _ => wrong_state(id),
                }
            }
            // outbind asks an ESME to bind; we never listen for it.
            CommandId::OUTBIND => Verdict::Ignore,
            // Requests only an MC receives: never valid towards an ESME.
            _ => wrong_state(id),
        }
    }

    fn may_send(state: State, id: CommandId) -> bool {
        match id {
            CommandId::BIND_TRANSMITTER
            | CommandId::BIND_RECEIVER
            | CommandId::BIND_TRANSCEIVER => state == State::Open,
            CommandId::SUBMIT_SM
            | CommandId::SUBMIT_MULTI
            | CommandId::DATA_SM
            | CommandId::QUERY_SM
            | CommandId::CANCEL_SM
            | CommandId::REPLACE_SM => matches!(state, State::Bound(k) if k.transmits()),
            CommandId::ENQUIRE_LINK => state.bound_kind().is_some(),
            CommandId::UNBIND => matches!(state, State::Bound(_) | State::Draining(_)),
            _ => false,
        }
    }
}

impl Role for Mc {
    const SIDE: Side = Side::Mc;

    fn on_receive(state: State, id: CommandId) -> Verdict {
        if let Some(v) = common_receive(state, id) {
            return v;
        }
        match id {
            CommandId::BIND_TRANSMITTER
            | CommandId::BIND_RECEIVER
            | CommandId::BIND_TRANSCEIVER => match state {
                State::Open => Verdict::Accept,
                State::Closed => Verdict::Reject(CommandStatus::RINVBNDSTS),
                _ => Verdict::Reject(CommandStatus::RALYBND),
            },
            // ESME → MC messages need a transmitting bind.
            CommandId::SUBMIT_SM
            | CommandId::SUBMIT_MULTI
            | CommandId::DATA_SM
            | CommandId::QUERY_SM
            | CommandId::CANCEL_SM
            | CommandId::REPLACE_SM => match state.bound_kind() {
                Some(k) if k.transmits() => Verdict::Accept,
                _ => wrong_state(id),
            },
            // Requests only an ESME receives.
            _ => wrong_state(id),
        }
    }

    fn may_send(state: State, id: CommandId) -> bool {
        match id {
            CommandId::DELIVER_SM | CommandId::DATA_SM | CommandId::ALERT_NOTIFICATION => {
                matches!(state, State::Bound(k) if k.receives())
            }
            CommandId::OUTBIND => state == State::Open,
            CommandId::ENQUIRE_LINK => state.bound_kind().is_some(),
            CommandId::UNBIND => matches!(state, State::Bound(_) | State::Draining(_)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: State = State::Bound(BindKind::Transmitter);
    const RX: State = State::Bound(BindKind::Receiver);
    const TRX: State = State::Bound(BindKind::Transceiver);

    #[test]
    fn esme_rejects_deliver_sm_before_bind_and_on_transmitter() {
        let bad = Verdict::Reject(CommandStatus::RINVBNDSTS);
        assert_eq!(Esme::on_receive(State::Open, CommandId::DELIVER_SM), bad);
        assert_eq!(Esme::on_receive(TX, CommandId::DELIVER_SM), bad);
        assert_eq!(Esme::on_receive(RX, CommandId::DELIVER_SM), Verdict::Accept);
        assert_eq!(Esme::on_receive(TRX, CommandId::DATA_SM), Verdict::Accept);
        assert_eq!(
            Esme::on_receive(
                State::Draining(BindKind::Transceiver),
                CommandId::DELIVER_SM
            ),
            Verdict::Accept
        );
    }

    #[test]
    fn enquire_link_is_answered_before_bind() {
        assert_eq!(
            Esme::on_receive(State::Open, CommandId::ENQUIRE_LINK),
            Verdict::Accept
        );
        assert_eq!(
            Esme::on_receive(
                State::ExpectBindResp(BindKind::Transmitter),
                CommandId::ENQUIRE_LINK
            ),
            Verdict::Accept
        );
        assert_eq!(
            Mc::on_receive(State::Open, CommandId::ENQUIRE_LINK),
            Verdict::Accept
        );
    }

    #[test]
    fn esme_rejects_requests_only_an_mc_receives() {
        let bad = Verdict::Reject(CommandStatus::RINVBNDSTS);
        assert_eq!(Esme::on_receive(TRX, CommandId::SUBMIT_SM), bad);
        assert_eq!(Esme::on_receive(TRX, CommandId::BIND_TRANSMITTER), bad);
        assert_eq!(Esme::on_receive(TRX, CommandId::OUTBIND), Verdict::Ignore);
    }

    #[test]
    fn unknown_command_is_unknown_for_both_roles() {
        assert_eq!(
            Esme::on_receive(TRX, CommandId(0x0000_0111)),
            Verdict::Unknown
        );
        assert_eq!(
            Mc::on_receive(State::Open, CommandId(0x0001_0000)),
            Verdict::Unknown
        );
    }

    #[test]
    fn mc_answers_second_bind_with_already_bound() {
        assert_eq!(
            Mc::on_receive(State::Open, CommandId::BIND_TRANSCEIVER),
            Verdict::Accept
        );
        assert_eq!(
            Mc::on_receive(TX, CommandId::BIND_RECEIVER),
            Verdict::Reject(CommandStatus::RALYBND)
        );
    }

    #[test]
    fn mc_rejects_submit_on_receiver_bind_and_before_bind() {
        let bad = Verdict::Reject(CommandStatus::RINVBNDSTS);
        assert_eq!(Mc::on_receive(RX, CommandId::SUBMIT_SM), bad);
        assert_eq!(Mc::on_receive(State::Open, CommandId::SUBMIT_SM), bad);
        assert_eq!(Mc::on_receive(TX, CommandId::SUBMIT_SM), Verdict::Accept);
        assert_eq!(Mc::on_receive(TRX, CommandId::DELIVER_SM), bad);
    }

    #[test]
    fn unbind_needs_a_bound_session() {
        let bad = Verdict::Reject(CommandStatus::RINVBNDSTS);
        assert_eq!(Esme::on_receive(State::Open, CommandId::UNBIND), bad);
        assert_eq!(Esme::on_receive(RX, CommandId::UNBIND), Verdict::Accept);
        assert_eq!(Mc::on_receive(State::Open, CommandId::UNBIND), bad);
    }

    #[test]
    fn send_matrix_follows_bind_kind() {
        assert!(Esme::may_send(State::Open, CommandId::BIND_TRANSCEIVER));
        assert!(!Esme::may_send(TX, CommandId::BIND_TRANSCEIVER));
        assert!(Esme::may_send(TX, CommandId::SUBMIT_SM));
        assert!(!Esme::may_send(RX, CommandId::SUBMIT_SM));
        assert!(!Esme::may_send(
            State::Draining(BindKind::Transmitter),
            CommandId::SUBMIT_SM
        ));
        assert!(!Esme::may_send(State::Open, CommandId::ENQUIRE_LINK));
        assert!(Mc::may_send(RX, CommandId::DELIVER_SM));
        assert!(!Mc::may_send(TX, CommandId::DELIVER_SM));
    }
}
