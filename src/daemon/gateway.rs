//! The agent ops over the store and the config: what `send`, `count`,
//! `transcript` and the rest do for the agent socket. The socket server
//! (framing, ids, subscriptions) is in [`crate::agent`]; this is the
//! daemon's [`Handler`].

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::agent::proto::{AgentError, ErrorCode, Op, SendOp, page_limit};
use crate::agent::server::{Handler, PeerInfo};
use crate::clock;
use crate::config::{Config, SenderType, ServiceConfig};
use crate::link::Links;
use crate::model::{Conversation, ConversationState, Message, OptOut, Template};
use crate::numbers;
use crate::store::{ChatRefused, NewOutbound, NewTemplate, SendRefused, Store, TemplateRefused};
use crate::text;

/// The daemon's answer to agent requests.
pub struct Gateway<S: Store> {
    store: Arc<S>,
    /// Swapped whole on a reload; requests take a snapshot.
    config: RwLock<Arc<Config>>,
    links: Arc<Links>,
}

impl<S: Store> Gateway<S> {
    /// A gateway over `store`, answering from `config`, sending through `links`.
    pub fn new(store: Arc<S>, config: Arc<Config>, links: Arc<Links>) -> Self {
        crate::metrics::outbox_limit(config.store.outbox_limit);
        Gateway {
            store,
            config: RwLock::new(config),
            links,
        }
    }

    /// Replaces the config requests are answered from (services, carrier
    /// settings, the outbox limit).
    pub fn reload(&self, config: Arc<Config>) {
        crate::metrics::outbox_limit(config.store.outbox_limit);
        match self.config.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn err(code: ErrorCode, message: impl Into<String>) -> AgentError {
    AgentError::new(code, message)
}

fn internal(e: impl std::fmt::Display) -> AgentError {
    tracing::error!("store failure answering an agent request: {e}");
    err(ErrorCode::Internal, format!("the store failed: {e}"))
}

fn service<'a>(cfg: &'a Config, name: &str) -> Result<&'a ServiceConfig, AgentError> {
    cfg.service(name).ok_or_else(|| {
        err(
            ErrorCode::UnknownService,
            format!("no service named {name:?}"),
        )
    })
}

fn plan_options(cfg: &Config, svc: &ServiceConfig) -> text::PlanOptions {
    match cfg.carrier(&svc.carrier) {
        Some(c) => c.plan_options(svc),
        None => text::PlanOptions {
            max_parts: svc.max_parts,
            transliterate: svc.transliterate,
            ..Default::default()
        },
    }
}

/// The sender as people read it: a long number with its '+'.
fn display_sender(svc: &ServiceConfig) -> String {
    match svc.sender_type {
        SenderType::Long => format!("+{}", svc.sender),
        _ => svc.sender.clone(),
    }
}

fn sender_type_name(t: SenderType) -> &'static str {
    match t {
        SenderType::Long => "long",
        SenderType::Short => "short",
        SenderType::Alphanumeric => "alphanumeric",
    }
}

fn at(ms: u64) -> Value {
    Value::String(clock::rfc3339_ms(ms))
}

fn conversation_json(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "service": c.service,
        "customer": c.customer,
        "owner": c.owner,
        "state": c.state,
        "interaction": c.interaction,
        "created_at": at(c.created_ms),
        "last_at": at(c.updated_ms),
        "ended_at": c.ended_ms.map(at),
    })
}

fn message_json(m: &Message) -> Value {
    json!({
        "message": m.id,
        "direction": m.direction,
        "at": at(m.created_ms),
        "updated_at": at(m.updated_ms),
        "status": m.status,
        "text": m.text,
        "parts": m.parts,
        "encoding": m.encoding,
        "agent": m.agent,
        "error": m.error,
        "possible_duplicate": m.possible_duplicate,
        "incomplete": m.incomplete,
    })
}

fn count_json(cfg: &Config, svc: &ServiceConfig, text: &str) -> Value {
    serde_json::to_value(text::count(text, &plan_options(cfg, svc))).unwrap_or(Value::Null)
}

fn template_json(cfg: &Config, t: &Template, svc: &ServiceConfig) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "text": t.text,
        "scope": "agent",
        "service": t.service,
        "count": count_json(cfg, svc, &t.text),
    })
}

fn opt_out_json(o: &OptOut) -> Value {
    json!({"customer": o.customer, "sender": o.sender, "since": at(o.since_ms)})
}

/// `opted_out`: since when, and how the customer opts back in (the
/// service's first opt-in keyword: START unless configured otherwise).
fn opted_out(svc: &ServiceConfig, customer: &str, since_ms: u64) -> AgentError {
    let start = svc
        .keywords
        .optin
        .first()
        .map_or_else(|| "START".to_string(), |w| w.to_uppercase());
    err(
        ErrorCode::OptedOut,
        format!(
            "{customer} opted out of messages from {} on {}; they can text {start} to opt back in",
            display_sender(svc),
            clock::rfc3339_ms(since_ms)
        ),
    )
}

/// `agent_not_allowed` when the service has an allow-list without `agent`.
fn check_agent(svc: &ServiceConfig, agent: &str) -> Result<(), AgentError> {
    // A conversation is owned by a named agent: an empty name would leave
    // replies with nobody to go to.
    if agent.trim().is_empty() {
        return Err(err(ErrorCode::BadRequest, "the agent's name is empty"));
    }
    match &svc.agents {
        Some(agents) if !agents.iter().any(|a| a == agent) => Err(err(
            ErrorCode::AgentNotAllowed,
            format!("agent {agent:?} may not use service {:?}", svc.name),
        )),
        _ => Ok(()),
    }
}

fn chat_refused(id: u64, r: ChatRefused) -> AgentError {
    match r {
        ChatRefused::NotFound => err(
            ErrorCode::UnknownConversation,
            format!("no conversation {id}"),
        ),
        ChatRefused::Ended => err(
            ErrorCode::ConversationEnded,
            format!("conversation {id} has ended"),
        ),
    }
}

impl<S: Store> Gateway<S> {
    async fn send(&self, op: SendOp) -> Result<Value, AgentError> {
        let cfg = self.config();
        let svc = service(&cfg, &op.service)?;
        check_agent(svc, &op.agent)?;
        let check = numbers::check(&op.to, &svc.default_country, svc.numbers);
        let customer = match (&check.e164, check.sms) {
            (Some(e164), true) => e164.clone(),
            _ => {
                let code = match check.code {
                    Some(numbers::NOT_MOBILE) => ErrorCode::NotMobile,
                    _ => ErrorCode::InvalidNumber,
                };
                let reason = check
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("{:?} cannot receive SMS", op.to));
                return Err(err(code, reason));
            }
        };
        // The protocol's order: number, opt-out, then the text. The store
        // checks the opt-out again when it accepts (the authoritative check).
        if let Some(o) = self
            .store
            .opt_out(&svc.sender, &customer)
            .await
            .map_err(internal)?
        {
            return Err(opted_out(svc, &customer, o.since_ms));
        }
        if op.text.trim().is_empty() {
            return Err(err(ErrorCode::EmptyText, "the message is empty"));
        }
        let plan = text::plan(&op.text, &plan_options(&cfg, svc), 0)
            .map_err(|e| err(ErrorCode::TooLong, e.to_string()))?;
        let carrier =
            crate::link::route::route(&svc.carrier, svc.fallback_carrier.as_deref(), |c| {
                self.links.can_send(c)
            })
            .unwrap_or(&svc.carrier)
            .to_string();
        let encoding = plan.encoding.as_str().to_string();
        let parts = u8::try_from(plan.parts.len()).unwrap_or(u8::MAX);
        let new = NewOutbound {
            service: svc.name.clone(),
            sender: svc.sender.clone(),
            customer: customer.clone(),
            owner: op.agent.clone(),
            interaction: op.interaction.clone(),
            text: op.text.clone(),
            encoding: encoding.clone(),
            parts,
            carrier,
            client_ref: op.client_ref.clone(),
            conversation: op.conversation,
            outbox_limit: Some(cfg.store.outbox_limit),
        };
        let accepted = self
            .store
            .accept_send(new, clock::wall_ms())
            .await
            .map_err(internal)?;
        match accepted {
            Ok(a) => {
                if !a.duplicate {
                    self.links.wake();
                }
                tracing::debug!(conversation = a.conversation, message = a.message, text = %op.text, "accepted");
                Ok(json!({
                    "conversation": a.conversation,
                    "message": a.message,
                    "parts": parts,
                    "encoding": encoding,
                    "at": at(a.at_ms),
                    "duplicate": a.duplicate,
                }))
            }
            Err(SendRefused::OptedOut { since_ms }) => Err(opted_out(svc, &customer, since_ms)),
            Err(SendRefused::ConversationNotFound { id }) => Err(err(
                ErrorCode::UnknownConversation,
                format!("no conversation {id}"),
            )),
            Err(SendRefused::ConversationEnded { id }) => Err(err(
                ErrorCode::ConversationEnded,
                format!("conversation {id} has ended; send without it to start a new one"),
            )),
            Err(SendRefused::ConversationMismatch { id }) => Err(err(
                ErrorCode::BadRequest,
                format!("conversation {id} is with another customer or service"),
            )),
            Err(SendRefused::OutboxFull {
                carrier,
                depth,
                limit,
            }) => Err(err(
                ErrorCode::OutboxFull,
                format!(
                    "not sent: {depth} messages are waiting for carrier {carrier} \
                     (store.outbox_limit {limit}); try again later"
                ),
            )),
        }
    }

    async fn owned(&self, id: u64, agent: &str) -> Result<Conversation, AgentError> {
        let conv = self
            .store
            .conversation(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| chat_refused(id, ChatRefused::NotFound))?;
        if conv.owner != agent && conv.state != ConversationState::Requested {
            return Err(err(
                ErrorCode::NotOwner,
                format!("conversation {id} belongs to {:?}", conv.owner),
            ));
        }
        Ok(conv)
    }

    async fn templates(&self, service_name: &str, agent: &str) -> Result<Value, AgentError> {
        let cfg = self.config();
        let svc = service(&cfg, service_name)?;
        let mut list: Vec<Value> = svc
            .templates
            .iter()
            .map(|t| {
                json!({
                    "id": null,
                    "name": t.name,
                    "text": t.text,
                    "scope": "service",
                    "service": svc.name,
                    "count": count_json(&cfg, svc, &t.text),
                })
            })
            .collect();
        let own = self.store.templates(agent).await.map_err(internal)?;
        list.extend(
            own.iter()
                .filter(|t| t.service.as_deref().is_none_or(|s| s == svc.name))
                .map(|t| template_json(&cfg, t, svc)),
        );
        Ok(json!({ "templates": list }))
    }

    async fn template_save(
        &self,
        id: Option<u64>,
        agent: String,
        service_name: Option<String>,
        name: String,
        text: String,
    ) -> Result<Value, AgentError> {
        let cfg = self.config();
        if name.trim().is_empty() {
            return Err(err(ErrorCode::BadRequest, "a template needs a name"));
        }
        if text.trim().is_empty() {
            return Err(err(ErrorCode::EmptyText, "a template needs a text"));
        }
        // A template must fit the limit of every service it may be used on.
        let services: Vec<&ServiceConfig> = match &service_name {
            Some(s) => vec![service(&cfg, s)?],
            None => cfg.services.iter().collect(),
        };
        for svc in &services {
            if let Err(e) = crate::config::template_fits(&cfg, &text, svc) {
                return Err(err(
                    ErrorCode::TemplateTooLong,
                    format!("too long for service {:?}: {e}", svc.name),
                ));
            }
        }
        let saved = self
            .store
            .put_template(
                NewTemplate {
                    id,
                    agent,
                    service: service_name,
                    name,
                    text,
                },
                cfg.agent.max_templates_per_agent,
                clock::wall_ms(),
            )
            .await
            .map_err(internal)?;
        match saved {
            Ok(t) => {
                let count = services
                    .first()
                    .map(|svc| count_json(&cfg, svc, &t.text))
                    .unwrap_or(Value::Null);
                Ok(json!({"template": {
                    "id": t.id, "name": t.name, "text": t.text, "scope": "agent",
                    "service": t.service, "count": count,
                }}))
            }
            Err(TemplateRefused::NotFound) => Err(err(
                ErrorCode::UnknownTemplate,
                format!("no template {} of this agent", id.unwrap_or(0)),
            )),
            Err(TemplateRefused::TooMany { max }) => Err(err(
                ErrorCode::TooManyTemplates,
                format!(
                    "the agent already keeps {max} templates, the most allowed \
                     (agent.max_templates_per_agent): delete or edit one"
                ),
            )),
        }
    }

    fn status(&self) -> Value {
        json!({
            "ready": self.links.all_ready(),
            "links": self.links.status().carriers.iter().map(|c| json!({
                "carrier": c.name,
                "ready": c.ready,
                "receiving": c.receiving,
                "binds": c.binds.iter().map(|b| json!({
                    "name": b.name,
                    "kind": b.kind,
                    "state": b.state,
                    "since": at(b.since_ms),
                    "attempts": b.attempts,
                    "last_error": b.last_error,
                    "retry_at": b.retry_at_ms.map(at),
                    "window_in_use": b.window_in_use,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "outbox": {
                "depth": self.store.outbox_depth(),
                "limit": self.config().store.outbox_limit,
                "carriers": self.store.outbox_depths(),
            },
            "head": *self.store.subscribe().borrow(),
        })
    }
}

impl<S: Store> Handler for Gateway<S> {
    async fn handle(&self, op: Op, _peer: &PeerInfo) -> Result<Value, AgentError> {
        let name = op.name();
        let result = self.dispatch(op).await;
        crate::metrics::agent_request(
            name,
            result
                .as_ref()
                .map(|_| "ok")
                .unwrap_or_else(|e| e.code.as_str()),
        );
        result
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Value>, AgentError> {
        let events = self
            .store
            .events_after(after, limit)
            .await
            .map_err(internal)?;
        Ok(events
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect())
    }

    fn watch_seq(&self) -> watch::Receiver<u64> {
        self.store.subscribe()
    }
}

impl<S: Store> Gateway<S> {
    async fn dispatch(&self, op: Op) -> Result<Value, AgentError> {
        let cfg = self.config();
        match op {
            Op::Hello { .. } => Ok(json!({})),
            Op::Services {} => Ok(json!({"services": cfg.services.iter().map(|s| json!({
                "name": s.name,
                "sms": true,
                "sender": display_sender(s),
                "sender_type": sender_type_name(s.sender_type),
                "max_parts": s.max_parts,
                "default_country": s.default_country,
                "numbers": s.numbers,
                "inbound": s.inbound,
            })).collect::<Vec<_>>()})),
            Op::Count {
                service: name,
                text,
            } => {
                let svc = service(&cfg, &name)?;
                Ok(count_json(&cfg, svc, &text))
            }
            Op::CheckNumber {
                service: name,
                number,
            } => {
                let svc = service(&cfg, &name)?;
                let check = numbers::check(&number, &svc.default_country, svc.numbers);
                serde_json::to_value(check).map_err(internal)
            }
            Op::Send(op) => {
                let service = op.service.clone();
                let result = self.send(op).await;
                if let Err(e) = &result {
                    if cfg.service(&service).is_some() {
                        crate::metrics::send_refused(&service, e.code.as_str());
                    }
                }
                result
            }
            Op::EndChat {
                conversation,
                agent,
            } => {
                self.owned(conversation, &agent).await?;
                let c = self
                    .store
                    .end_chat(conversation, &agent, clock::wall_ms())
                    .await
                    .map_err(internal)?
                    .map_err(|r| chat_refused(conversation, r))?;
                Ok(
                    json!({"conversation": c.id, "state": c.state, "at": at(c.ended_ms.unwrap_or(c.updated_ms))}),
                )
            }
            Op::Transcript {
                conversation,
                before,
                limit,
            } => {
                let limit = page_limit(limit)?;
                let page = self
                    .store
                    .transcript_page(conversation, before, limit)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| chat_refused(conversation, ChatRefused::NotFound))?;
                // A `before` of another conversation lists nothing: say so.
                // (One that retention purged from this conversation lists
                // those left older than it, so an empty page with a
                // `before` that is gone means it was never this one's.)
                if let Some(b) = before.filter(|_| page.messages.is_empty()) {
                    let theirs = self.store.message(b).await.map_err(internal)?;
                    if theirs.is_none_or(|m| m.conversation != conversation) {
                        return Err(AgentError::bad_request(format!(
                            "`before`: message {b} is not one of conversation {conversation}'s"
                        )));
                    }
                }
                Ok(json!({
                    "conversation": conversation_json(&page.conversation),
                    "messages": page.messages.iter().map(message_json).collect::<Vec<_>>(),
                    "older": page.older,
                }))
            }
            Op::Conversations {
                owner,
                service: svc_filter,
                include_requested,
                after,
                limit,
            } => {
                let limit = page_limit(limit)?;
                let page = self
                    .store
                    .conversations(owner.as_deref(), include_requested, after, limit)
                    .await
                    .map_err(internal)?;
                // The service filter applies within the page: a page may come
                // back short (even empty) with `next` set.
                Ok(json!({
                    "conversations": page
                        .conversations
                        .iter()
                        .filter(|c| svc_filter.as_deref().is_none_or(|s| s == c.service))
                        .map(conversation_json)
                        .collect::<Vec<_>>(),
                    "next": page.next,
                }))
            }
            Op::Assign {
                conversation,
                to,
                by,
            } => {
                if let Some(by) = &by {
                    self.owned(conversation, by).await?;
                }
                // The new owner must be allowed on the conversation's service
                // (agent_not_allowed), as for a send.
                if let Some(c) = self
                    .store
                    .conversation(conversation)
                    .await
                    .map_err(internal)?
                {
                    if let Some(svc) = cfg.service(&c.service) {
                        check_agent(svc, &to)?;
                    }
                }
                let c = self
                    .store
                    .assign(conversation, &to, clock::wall_ms())
                    .await
                    .map_err(internal)?
                    .map_err(|r| chat_refused(conversation, r))?;
                Ok(json!({"conversation": c.id, "owner": c.owner, "state": c.state}))
            }
            Op::Subscribe { from, consumer } => {
                // Without `from`, a named consumer resumes after its last ack.
                let from = match (from, &consumer) {
                    (Some(f), _) => f,
                    (None, Some(c)) => self.store.cursor(c).await.map_err(internal)?.unwrap_or(0),
                    (None, None) => 0,
                };
                Ok(json!({"from": from}))
            }
            Op::Ack { seq, consumer } => {
                if let Some(c) = &consumer {
                    self.store.ack(c, seq).await.map_err(internal)?;
                }
                Ok(json!({"seq": seq}))
            }
            Op::Status {} => Ok(self.status()),
            Op::Templates { service: s, agent } => self.templates(&s, &agent).await,
            Op::TemplateSave {
                template,
                agent,
                service: s,
                name,
                text,
            } => self.template_save(template, agent, s, name, text).await,
            Op::TemplateDelete { template, agent } => {
                let deleted = self
                    .store
                    .delete_template(template, &agent)
                    .await
                    .map_err(internal)?;
                if deleted {
                    Ok(json!({"template": template, "deleted": true}))
                } else {
                    Err(err(
                        ErrorCode::UnknownTemplate,
                        format!("no template {template} of agent {agent:?}"),
                    ))
                }
            }
            Op::OptOuts {
                service: name,
                after,
                limit,
            } => {
                let svc = service(&cfg, &name)?;
                let limit = page_limit(limit)?;
                let page = self
                    .store
                    .opt_outs(&svc.sender, after.as_deref(), limit)
                    .await
                    .map_err(internal)?;
                Ok(json!({
                    "opt_outs": page.opt_outs.iter().map(opt_out_json).collect::<Vec<_>>(),
                    "next": page.next,
                }))
            }
        }
    }
}
