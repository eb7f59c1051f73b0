// Owned channel names (docs/protocol.md, `user:register`): the first STREAMER registration that
// claims a name gets its channel token back, once; this browser keeps it and sends it with every
// later registration of that name, so nobody else can stream (and chat) as that channel.

type KeyValue = Pick<Storage, 'getItem' | 'setItem'>;

/** Where a name's token is kept: names are compared in lower case, as the server does. */
export function channelTokenKey(name: string): string {
  return `streamhub.channelToken.${name.trim().toLowerCase()}`;
}

/** The registration fields for `name`: always ask to claim, and prove a claim this browser holds. */
export function claimFields(store: KeyValue, name: string): { claim: true; channelToken?: string } {
  const token = store.getItem(channelTokenKey(name));
  return token ? { claim: true, channelToken: token } : { claim: true };
}

/** Keeps the token a registration that claimed `name` got back. */
export function keepChannelToken(store: KeyValue, name: string, token: string | undefined): void {
  if (token) store.setItem(channelTokenKey(name), token);
}
