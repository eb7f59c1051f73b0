//! `user:register`.

use streamhub_protocol::client::{Register, Role};
use streamhub_protocol::server::{Registered, User};
use streamhub_protocol::{ErrorCode, events, validate};

use super::{Ctx, Handled, Refusal, emit, stream};
use crate::{attempts, ids};

pub(super) async fn register(ctx: &mut Ctx<'_>, r: Register) -> Handled<Registered> {
    if ctx.session.user.is_some() {
        return Err(Refusal::new(
            ErrorCode::AlreadyRegistered,
            "this connection is already registered; open a new connection to change user",
        ));
    }
    let max = ctx.hub.config.max_username_chars;
    let username = validate::username(&r.username, max).map_err(|code| {
        Refusal::new(
            code,
            format!("username must be 1 to {max} characters, without control characters"),
        )
    })?;
    if r.role == Role::Streamer
        && let Some(secret) = &ctx.hub.config.publish_secret
    {
        check_secret(ctx, secret, r.secret.as_deref())?;
    }
    let user = User {
        id: ids::user_id(),
        username,
        role: r.role,
    };
    ctx.session.user = Some(user.clone());
    let reply = Registered { user };
    emit(ctx.hub, ctx.s, events::USER_REGISTERED, &reply);
    if r.role == Role::Streamer {
        // The seed's streamer page waits for `stream:created` right after registering.
        match stream::create_for(ctx, None).await {
            Ok(created) => emit(ctx.hub, ctx.s, events::STREAM_CREATED, &created),
            Err(refusal) => super::error_event(ctx.hub, ctx.s, events::STREAM_CREATE, &refusal),
        }
    }
    Ok(reply)
}

/// Checks a STREAMER's publish secret. Wrong ones count per client address: past
/// [`attempts::FREE_ATTEMPTS`] the address has to wait (`RATE_LIMITED`, without the secret being
/// looked at), and a connection that sent [`attempts::CLOSE_AFTER`] wrong ones is closed.
fn check_secret(ctx: &mut Ctx<'_>, secret: &str, given: Option<&str>) -> Handled<()> {
    let now = std::time::Instant::now();
    let addr = ctx.session.addr;
    let attempts = &ctx.hub.secret_attempts;
    if let Some(wait) = addr.and_then(|a| attempts.wait(a, now)) {
        return Err(Refusal::new(
            ErrorCode::RateLimited,
            format!(
                "too many wrong publish secrets from this address; try again in {} s",
                wait.as_secs().max(1)
            ),
        ));
    }
    if given.is_some_and(|g| ids::secrets_match(secret, g)) {
        if let Some(a) = addr {
            attempts.succeeded(a);
        }
        return Ok(());
    }
    if let Some(a) = addr {
        attempts.failed(a, now);
    }
    ctx.session.secret_failures += 1;
    if ctx.session.secret_failures >= attempts::CLOSE_AFTER {
        tracing::info!("closing a connection that sent too many wrong publish secrets");
        let s = ctx.s.clone();
        // After the refusal below has gone out.
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let _ = s.disconnect();
        });
    }
    Err(Refusal::new(
        ErrorCode::Forbidden,
        "this server needs the publish secret to register as STREAMER",
    ))
}
