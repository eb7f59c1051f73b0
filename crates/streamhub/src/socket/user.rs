//! `user:register`.

use streamhub_protocol::client::{Register, Role};
use streamhub_protocol::server::{Registered, User};
use streamhub_protocol::{ErrorCode, events, validate};

use super::{Ctx, Handled, Refusal, emit, stream};
use crate::ids;

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
        && !r
            .secret
            .as_deref()
            .is_some_and(|given| ids::secrets_match(secret, given))
    {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            "this server needs the publish secret to register as STREAMER",
        ));
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
