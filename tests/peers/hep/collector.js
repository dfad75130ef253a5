// A HEP collector for the tests: receives HEPv3 on UDP or TCP at
// 127.0.0.1:PORT, decodes each packet with sipcapture's hep-js (the
// decoder Homer's Node tools use) and appends it to OUT as one JSON line
// ({rcinfo, payload}). Prints "listening" once bound.
// Usage: node collector.js udp|tcp PORT OUT   (NODE_PATH must reach hep-js)
const hep = require('hep-js');
const fs = require('fs');
const [transport, port, out] = process.argv.slice(2);
const write = (packet) => {
  try {
    fs.appendFileSync(out, JSON.stringify(hep.decapsulate(packet)) + '\n');
  } catch (e) {
    fs.appendFileSync(out, JSON.stringify({ error: String(e) }) + '\n');
  }
};
if (transport === 'udp') {
  const sock = require('dgram').createSocket('udp4');
  sock.on('message', write);
  sock.bind(Number(port), '127.0.0.1', () => console.log('listening'));
} else {
  const server = require('net').createServer((conn) => {
    let buf = Buffer.alloc(0);
    conn.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 6 && buf.length >= buf.readUInt16BE(4)) {
        const len = buf.readUInt16BE(4);
        write(buf.subarray(0, len));
        buf = buf.subarray(len);
      }
    });
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('listening'));
}
