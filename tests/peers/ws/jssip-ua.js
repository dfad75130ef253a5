// A JsSIP user agent (the browser SIP stack) under Node.js, for
// tests/tests/websocket.rs: registers over SIP over WebSocket, rejects
// incoming calls with 486 once they have rung, and prints one JSON line
// per event on stdout. Arguments: ws[s]://host:port user password realm
// [ca.pem]. No WebRTC: signalling only.
'use strict';
const fs = require('fs');
const WS = require('ws');
const [url, user, password, realm, ca] = process.argv.slice(2);

// JsSIP opens `new WebSocket(url, 'sip')`; ws is Node's WebSocket, told
// to trust the test's certificate for wss://.
global.WebSocket = class extends WS {
  constructor(u, protocols) {
    super(u, protocols, ca ? { ca: fs.readFileSync(ca) } : {});
  }
};
// JsSIP takes INVITEs only where the browser has WebRTC
// (window.RTCPeerConnection); this one refuses to be made, as calls are
// rejected before any media would be set up.
global.window = {
  RTCPeerConnection: class {
    constructor() {
      throw new Error('no WebRTC under Node.js: signalling only');
    }
  },
};
const JsSIP = require('jssip');
const say = (event, extra) => console.log(JSON.stringify({ event, ...extra }));

const host = new URL(url).hostname;
const ua = new JsSIP.UA({
  sockets: [new JsSIP.WebSocketInterface(url)],
  uri: `sip:${user}@${host}`,
  password,
  realm,
  register: true,
  register_expires: 300,
  session_timers: false,
});
ua.on('connected', () => say('connected'));
ua.on('disconnected', () => say('disconnected'));
ua.on('registered', () => say('registered'));
ua.on('registrationFailed', (e) => say('registration_failed', { cause: e.cause }));
ua.on('newRTCSession', ({ originator, session, request }) => {
  if (originator !== 'remote') return;
  say('incoming', {
    from: session.remote_identity.uri.user,
    call_id: request.call_id,
    via: request.getHeader('Via'),
  });
  setTimeout(() => {
    session.terminate({ status_code: 486 });
    say('rejected', { call_id: request.call_id });
  }, 300);
});
ua.start();
// The test kills it; never outlive a test that forgot to.
setTimeout(() => process.exit(0), 60000);
