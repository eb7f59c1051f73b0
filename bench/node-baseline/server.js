'use strict';
// The design note's multicast server "as written" (streamhub-multicast-seed.md), ported from its
// TypeScript sketch to plain Node.js + socket.io 4.8 with nothing added: Socket.IO rooms, a
// 30-frame circular buffer for late joiners, `stream:data` = {streamKey, data, timestamp}, the
// note's event names. No validation, no limits, no slow-viewer policy: that is the point of a
// baseline. Used only by bench/run.sh.
//
//   PORT=3100 node server.js      (or: node server.js 3100)

const http = require('http');
const crypto = require('crypto');
const { Server } = require('socket.io');

// src/shared/events.ts
const Events = {
  USER_REGISTER: 'user:register',
  USER_REGISTERED: 'user:registered',
  STREAM_CREATE: 'stream:create',
  STREAM_CREATED: 'stream:created',
  STREAM_START: 'stream:start',
  STREAM_STARTED: 'stream:started',
  STREAM_JOIN: 'stream:join',
  STREAM_JOINED: 'stream:joined',
  STREAM_END: 'stream:end',
  STREAM_ENDED: 'stream:ended',
  ERROR: 'error',
  // Multicast events added by the note.
  STREAM_DATA: 'stream:data', // server → viewers (multicast)
  STREAM_BUFFER: 'stream:buffer', // server → new viewer (catch-up)
  STREAM_DATA_SEND: 'stream:data:send', // streamer → server
};

// src/server/StreamDistributor.ts
class StreamDistributor {
  constructor(io) {
    this.io = io;
    this.streams = new Map(); // streamKey → { viewers: Set<viewerId>, buffer: frame[] }
    this.BUFFER_SIZE = 30;
  }

  registerStream(streamKey) {
    if (!this.streams.has(streamKey)) {
      this.streams.set(streamKey, { viewers: new Set(), buffer: [] });
    }
  }

  unregisterStream(streamKey) {
    this.streams.delete(streamKey);
  }

  addViewer(streamKey, viewerId) {
    const stream = this.streams.get(streamKey);
    if (!stream) return false;
    stream.viewers.add(viewerId);
    return true;
  }

  removeViewer(streamKey, viewerId) {
    const stream = this.streams.get(streamKey);
    if (!stream) return false;
    return stream.viewers.delete(viewerId);
  }

  // MULTICAST: one emit to the stream's room reaches every viewer.
  distributeStreamData(streamKey, data, streamerId) {
    const stream = this.streams.get(streamKey);
    if (!stream) return 0;
    const frame = { data, timestamp: Date.now() };
    stream.buffer.push(frame);
    if (stream.buffer.length > this.BUFFER_SIZE) stream.buffer.shift();
    this.io.to(streamKey).emit(Events.STREAM_DATA, {
      streamKey,
      data,
      timestamp: frame.timestamp,
    });
    return stream.viewers.size;
  }

  getBuffer(streamKey) {
    const stream = this.streams.get(streamKey);
    return stream ? stream.buffer : [];
  }

  getStreamStats(streamKey) {
    const stream = this.streams.get(streamKey);
    return {
      viewerCount: stream ? stream.viewers.size : 0,
      bufferSize: stream ? stream.buffer.length : 0,
    };
  }
}

// src/server/index.ts
const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer, { cors: { origin: '*' } });
const distributor = new StreamDistributor(io);
const users = new Map(); // socket.id → user
const streams = new Map(); // streamKey → stream

function newStream(user, title) {
  const stream = {
    streamKey: crypto.randomBytes(8).toString('hex'),
    title: title || `${user.username}'s stream`,
    streamer: { id: user.id, username: user.username },
    status: 'created',
    createdAt: Date.now(),
    startedAt: null,
    viewerCount: 0,
  };
  streams.set(stream.streamKey, stream);
  distributor.registerStream(stream.streamKey);
  return stream;
}

function endStream(streamKey) {
  const stream = streams.get(streamKey);
  if (!stream) return;
  stream.status = 'ended';
  io.to(streamKey).emit(Events.STREAM_ENDED, { streamKey });
  distributor.unregisterStream(streamKey);
  streams.delete(streamKey);
}

io.on('connection', (socket) => {
  socket.on(Events.USER_REGISTER, (data) => {
    const user = { id: socket.id, username: data.username, role: data.role };
    users.set(socket.id, user);
    socket.emit(Events.USER_REGISTERED, { user });
    if (user.role === 'STREAMER') {
      const stream = newStream(user);
      socket.emit(Events.STREAM_CREATED, { stream });
    }
  });

  socket.on(Events.STREAM_CREATE, (data) => {
    const user = users.get(socket.id);
    if (!user) return;
    const stream = newStream(user, data && data.title);
    socket.emit(Events.STREAM_CREATED, { stream });
  });

  socket.on(Events.STREAM_START, (data) => {
    const stream = streams.get(data.streamKey);
    if (!stream) return socket.emit(Events.ERROR, { message: 'Stream not found' });
    stream.status = 'live';
    stream.startedAt = Date.now();
    socket.join(data.streamKey);
    io.to(data.streamKey).emit(Events.STREAM_STARTED, { stream });
  });

  socket.on(Events.STREAM_JOIN, (data) => {
    const { streamKey } = data;
    const stream = streams.get(streamKey);
    if (!stream || !distributor.addViewer(streamKey, socket.id)) {
      return socket.emit(Events.ERROR, { message: 'Stream not found' });
    }
    socket.join(streamKey);
    stream.viewerCount = distributor.getStreamStats(streamKey).viewerCount;
    socket.emit(Events.STREAM_JOINED, { stream });
    const frames = distributor.getBuffer(streamKey);
    if (frames.length > 0) {
      socket.emit(Events.STREAM_BUFFER, { streamKey, frames });
    }
  });

  socket.on(Events.STREAM_DATA_SEND, (data) => {
    distributor.distributeStreamData(data.streamKey, data.data, socket.id);
  });

  socket.on(Events.STREAM_END, (data) => {
    endStream(data.streamKey);
  });

  socket.on('disconnect', () => {
    for (const [streamKey, stream] of streams) {
      if (stream.streamer.id === socket.id) {
        endStream(streamKey);
      } else if (distributor.removeViewer(streamKey, socket.id)) {
        stream.viewerCount = distributor.getStreamStats(streamKey).viewerCount;
      }
    }
    users.delete(socket.id);
  });
});

const port = Number(process.env.PORT || process.argv[2] || 3000);
const host = process.env.HOST || '127.0.0.1';
httpServer.listen(port, host, () => {
  console.log(`node-baseline listening on http://${host}:${httpServer.address().port}`);
});

function shutdown() {
  io.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
