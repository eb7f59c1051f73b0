// The viewer's sound: one state (muted, volume, autoplay-blocked) that every player reads:
// the WebM player (a <video> element) and the WebCodecs/images audio player
// (lib/audio-player.ts, Web Audio) subscribe here alike, so the controls and shortcuts are one.

/** What a stream's frames are, as the viewer sees them. */
export type SoundMode = 'none' | 'jpeg' | 'webp' | 'webm' | 'webcodecs';

/** Whether the stream carries sound: WebM always, the others when audio chunks came (`hasAudio`). */
export function carriesSound(mode: SoundMode, hasAudio = false): boolean {
  return mode === 'webm' || (hasAudio && mode !== 'none');
}

/** What to tell the viewer about sound in this mode ('' when there is nothing to say). */
export function soundNote(mode: SoundMode, hasAudio = false): string {
  if (hasAudio) return '';
  switch (mode) {
    case 'jpeg':
    case 'webp':
      return 'No sound: this stream sends pictures only';
    case 'webcodecs':
      return 'No sound: the streamer sends no microphone';
    default:
      return '';
  }
}

/** The audio player's state as the mode badge ends: '' where there is no audio track. */
export function soundBadge(player: 'starting' | 'playing' | 'blocked' | 'unsupported' | 'failed' | null, v: AudioView): string {
  switch (player) {
    case null:
      return '';
    case 'playing':
      return v.muted || v.volume === 0 ? ' · sound muted' : ' · sound';
    case 'starting':
      return ' · sound starting';
    case 'blocked':
      return ' · sound blocked (tap to unmute)';
    case 'unsupported':
      return ' · no sound here (no AudioDecoder)';
    case 'failed':
      return ' · sound failed';
  }
}

export interface AudioView {
  muted: boolean;
  volume: number;
  /** The browser refused to play with sound until the person interacts (autoplay policy). */
  blocked: boolean;
}

const VOLUME_KEY = 'streamhub.volume';

export class AudioState {
  private view: AudioView;
  private subs = new Set<(v: AudioView) => void>();

  constructor(private storage: Pick<Storage, 'getItem' | 'setItem'> | null = null) {
    const stored = Number(storage?.getItem(VOLUME_KEY) ?? NaN);
    this.view = { muted: false, volume: Number.isFinite(stored) ? clamp(stored) : 1, blocked: false };
  }

  get current(): AudioView {
    return this.view;
  }

  /** Calls `fn` now and on every change; returns the unsubscribe. */
  subscribe(fn: (v: AudioView) => void): () => void {
    this.subs.add(fn);
    fn(this.view);
    return () => this.subs.delete(fn);
  }

  setMuted(muted: boolean): void {
    // Unmuting is the interaction the autoplay policy waits for.
    this.update({ muted, blocked: muted ? this.view.blocked : false });
  }

  toggleMuted(): void {
    this.setMuted(!this.view.muted);
  }

  /** 0..1; moving the slider up from a muted state unmutes (as every player does). */
  setVolume(volume: number): void {
    const v = clamp(volume);
    this.storage?.setItem(VOLUME_KEY, String(v));
    this.update({ volume: v, muted: v === 0 ? this.view.muted : false, blocked: v === 0 ? this.view.blocked : false });
  }

  /** The player had to start muted (autoplay with sound refused). */
  blocked(): void {
    this.update({ muted: true, blocked: true });
  }

  /** Applies the state to a media element. */
  static apply(v: AudioView, media: HTMLMediaElement): void {
    if (media.muted !== v.muted) media.muted = v.muted;
    if (Math.abs(media.volume - v.volume) > 1e-3) media.volume = v.volume;
  }

  private update(patch: Partial<AudioView>): void {
    const next = { ...this.view, ...patch };
    if (next.muted === this.view.muted && next.volume === this.view.volume && next.blocked === this.view.blocked) return;
    this.view = next;
    for (const fn of this.subs) fn(next);
  }
}

function clamp(v: number): number {
  return Math.min(1, Math.max(0, Number.isFinite(v) ? v : 1));
}
