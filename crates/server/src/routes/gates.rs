//! `/v1/ns/{ns}/gates`: lifecycle gates with epochs, and tickets admitted under
//! an epoch (SPEC §7). The answers of ticket operations are tabulated in
//! `docs/gates.md`.

use crate::extract::{content_type_is, parse_json, read_body, Caller, Json, Name, Ns, Path, Query};
use crate::idempotency::{render, run, Idem, Reply};
use crate::routes::leases::random_id;
use crate::routes::paging::Page;
use crate::{wire, ApiError, AppState};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
pub use lockstep_api::gates::{AdmitBody, AppendSpec, FinalizeBody, PutGateBody as PutBody, TicketsQuery};
use lockstep_core::command::answer::{Admitted, GatePut, TicketAnswer, Transitioned};
use lockstep_core::feed::NewEntry;
use lockstep_core::gate::{TicketOp, TicketState, Transition};
use lockstep_core::{names, Command};
use serde::Serialize;

/// `PUT /gates/{id}`: 201 created open at epoch 1; 200 updates policy and meta.
pub async fn put(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(id): Name,
    caller: Caller,
    Idem(idem): Idem,
    Json(body): Json<PutBody>,
) -> Result<Response, ApiError> {
    if let Some(m) = &body.meta {
        lockstep_core::json::check_value(m, &st.limits)?;
    }
    let answer = render(|GatePut { gate, created }, _| Reply::created(created, wire::gates::gate(&gate)));
    let cmd = Command::PutGate {
        id,
        policy: body.policy,
        meta: body.meta,
    };
    run(&st, &ns, &caller.name, idem, cmd, answer).await
}

/// `GET /gates/{id}`.
pub async fn get(State(st): State<AppState>, Ns(ns): Ns, Name(id): Name) -> Result<Response, ApiError> {
    let g = st
        .store
        .get_gate(&ns, &id)
        .await?
        .ok_or_else(|| lockstep_core::Error::NotFound(format!("gate {id:?} does not exist")))?;
    Ok(axum::Json(wire::gates::gate(&g)).into_response())
}

/// `POST /gates/{id}/{transition}`: pause, resume, revoke, delete, reopen.
pub async fn transition(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Path((_, id, name)): Path<(String, String, String)>,
    caller: Caller,
    Idem(idem): Idem,
) -> Result<Response, ApiError> {
    names::validate_key(&id, &st.limits)?;
    let transition = Transition::parse(&name)?;
    run_transition(&st, &ns, &caller, idem, id, transition).await
}

/// `DELETE /gates/{id}`: the `delete` transition.
pub async fn delete(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(id): Name,
    caller: Caller,
    Idem(idem): Idem,
) -> Result<Response, ApiError> {
    run_transition(&st, &ns, &caller, idem, id, Transition::Delete).await
}

/// Runs a transition; the answer is the gate with `changed`, `voided`,
/// `pending` and the revision of the gate's last write.
async fn run_transition(
    st: &AppState,
    ns: &str,
    caller: &Caller,
    idem: Option<crate::idempotency::IdemRequest>,
    id: String,
    transition: Transition,
) -> Result<Response, ApiError> {
    if matches!(transition, Transition::Delete) && !caller.admin {
        return Err(lockstep_core::Error::Forbidden("deleting a gate needs the admin role".into()).into());
    }
    let answer = render(|t: Transitioned, _| {
        Reply::ok(lockstep_api::gates::GateTransitioned {
            gate: wire::gates::gate(&t.gate),
            changed: t.changed,
            voided: t.voided,
            pending: t.pending,
        })
    });
    run(
        st,
        ns,
        &caller.name,
        idem,
        Command::Transition { id, transition },
        answer,
    )
    .await
}

/// `POST /gates/{id}/tickets`: admit a ticket under the current epoch.
pub async fn admit(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(gate): Name,
    caller: Caller,
    Idem(idem): Idem,
    req: Request,
) -> Result<Response, ApiError> {
    let body: AdmitBody = optional_json(req, &st).await?.unwrap_or_default();
    if let Some(m) = &body.meta {
        lockstep_core::json::check_value(m, &st.limits)?;
    }
    let ticket = match body.ticket_id {
        Some(t) => {
            names::validate_key(&t, &st.limits)?;
            t
        }
        None => random_id()?,
    };
    let answer = render(|Admitted { ticket, created }, _| {
        let body = lockstep_api::gates::TicketAdmitted {
            ticket: wire::gates::ticket(&ticket),
            created,
        };
        Reply::created(created, body)
    });
    run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::Admit {
            gate,
            ticket,
            meta: body.meta,
            capability: caller.capability_check(),
        },
        answer,
    )
    .await
}

/// A JSON body that may be absent (empty).
async fn optional_json<T: serde::de::DeserializeOwned + Serialize>(
    req: Request,
    st: &AppState,
) -> Result<Option<T>, ApiError> {
    let json_type = content_type_is(req.headers(), "application/json");
    let bytes = read_body(req, &st.limits).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !json_type {
        return Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        ));
    }
    parse_json(&bytes, &st.limits).map(Some)
}

/// `POST /gates/{id}/tickets/{t}/{op}`: check, commit, finalize, abort.
pub async fn ticket_op(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Path((_, gate, ticket, op)): Path<(String, String, String, String)>,
    caller: Caller,
    Idem(idem): Idem,
    req: Request,
) -> Result<Response, ApiError> {
    names::validate_key(&gate, &st.limits)?;
    names::validate_key(&ticket, &st.limits)?;
    let op = match op.as_str() {
        "check" => TicketOp::Check,
        "commit" => TicketOp::Commit,
        "finalize" => TicketOp::Finalize,
        "abort" => TicketOp::Abort,
        other => {
            return Err(ApiError::invalid(format!(
                "unknown ticket operation {other:?}: check, commit, finalize or abort"
            )))
        }
    };
    let body: FinalizeBody = optional_json(req, &st).await?.unwrap_or_default();
    let append = match (op, body.append) {
        (_, None) => None,
        (TicketOp::Finalize, Some(a)) => {
            names::validate_key(&a.feed, &st.limits)?;
            Some((a.feed, NewEntry::new(ticket.clone(), a.data, None, &st.limits)?))
        }
        (_, Some(_)) => return Err(ApiError::invalid("append is only valid with finalize")),
    };
    let answer = render(|a: TicketAnswer, _| match a {
        TicketAnswer::Done(ticket) => Reply::ok(wire::gates::ticket(&ticket)),
        TicketAnswer::Voided { detail } => Err(lockstep_core::Error::GateClosed(detail).into()),
    });
    run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::Ticket {
            gate,
            ticket,
            op,
            append,
            capability: caller.capability_check(),
        },
        answer,
    )
    .await
}

/// `GET /gates/{id}/tickets?state=&limit=&cursor=`.
pub async fn tickets(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(gate): Name,
    Query(q): Query<TicketsQuery>,
) -> Result<Response, ApiError> {
    let state = q
        .state
        .as_deref()
        .map(|s| {
            TicketState::parse(s).ok_or_else(|| ApiError::invalid(format!("unknown ticket state {s:?}")))
        })
        .transpose()?;
    let scope = format!("{ns}\0tickets\0{gate}\0{}", q.state.as_deref().unwrap_or(""));
    let page = Page::new(&st, scope, q.limit, q.cursor.as_deref())?;
    let tickets = st
        .store
        .list_tickets(&ns, &gate, state, page.after.as_deref(), page.fetch())
        .await?;
    let (tickets, next_cursor) = page.cut(tickets, |t| t.id.clone());
    let items = lockstep_api::gates::Tickets {
        tickets: tickets.iter().map(wire::gates::ticket).collect(),
    };
    Ok(axum::Json(wire::Page { items, next_cursor }).into_response())
}
