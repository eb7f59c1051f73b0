//! `user:register`.

use streamhub_protocol::client::{Register, Role};
use streamhub_protocol::server::{Registered, User};
use streamhub_protocol::{ErrorCode, events, validate};

use super::{Ctx, Handled, Refusal, emit, stream};
use crate::hub::Hub;
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
            format!(
                "username must be 1 to {max} characters, at least one of them visible (not only spaces or zero-width characters), and no control characters"
            ),
        )
    })?;
    if r.role == Role::Streamer
        && let Some(secret) = &ctx.hub.config.publish_secret
    {
        check_secret(ctx, secret, r.secret.as_deref())?;
    }
    let channel_token = if r.role == Role::Streamer {
        check_claim(
            ctx.hub,
            &username,
            r.claim == Some(true),
            r.channel_token.as_deref(),
        )
        .await?
    } else {
        None
    };
    let user = User {
        id: ids::user_id(),
        username,
        role: r.role,
    };
    ctx.session.user = Some(user.clone());
    let reply = Registered {
        user,
        channel_token,
    };
    emit(ctx.hub, ctx.s, events::USER_REGISTERED, &reply);
    if r.role == Role::Streamer {
        // The seed's streamer page waits for `stream:created` right after registering.
        match stream::create_for(ctx, None).await {
            Ok(created) => {
                emit(ctx.hub, ctx.s, events::STREAM_CREATED, &created);
                stream::send_history(ctx.hub, ctx.s, &created.stream).await;
            }
            Err(refusal) => super::error_event(ctx.hub, ctx.s, events::STREAM_CREATE, &refusal),
        }
    }
    Ok(reply)
}

/// Owned channel names: a STREAMER registration of a claimed name needs its channel token
/// (else `NAME_TAKEN`); one that asks (`claim`) for an unclaimed name claims it and gets the
/// token back (`Some`), once. Names are compared in lower case, so `Carol` cannot pose as
/// `carol`. Claims live where every node sees them: Redis in cluster mode, else SQLite.
async fn check_claim(
    hub: &Hub,
    username: &str,
    claim: bool,
    given: Option<&str>,
) -> Handled<Option<String>> {
    let name = username.to_lowercase();
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "channel claims unavailable");
        Refusal::new(
            ErrorCode::ServerFull,
            "channel names cannot be checked right now (storage unavailable); try again",
        )
    };
    let held = match &hub.cluster {
        Some(c) => c.channel_claim(&name).await.map_err(|e| unavailable(&e))?,
        None => hub
            .store
            .channel_claim(&name)
            .await
            .map_err(|e| unavailable(&e))?,
    };
    let taken = || {
        Refusal::new(
            ErrorCode::NameTaken,
            format!(
                "\"{username}\" is a claimed channel: registering it as STREAMER needs its channelToken (pick another name, or use the browser that claimed it)"
            ),
        )
    };
    if let Some(hash) = held {
        return if given.is_some_and(|t| ids::token_matches(t, &hash)) {
            Ok(None)
        } else {
            Err(taken())
        };
    }
    if !claim {
        return Ok(None);
    }
    let token = ids::channel_token();
    let hash = ids::token_hash(&token);
    let claimed = match &hub.cluster {
        Some(c) => c
            .claim_channel(&name, &hash)
            .await
            .map_err(|e| unavailable(&e))?,
        None => hub
            .store
            .claim_channel(&name, &hash, crate::clock::now_ms())
            .await
            .map_err(|e| unavailable(&e))?,
    };
    // Another registration claimed it between the read and the write.
    if claimed {
        Ok(Some(token))
    } else {
        Err(taken())
    }
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
