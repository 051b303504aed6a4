// An SMSC built on the npm `smpp` package (farhadi/node-smpp), for
// smppgw's interop test (tests/interop.rs). It is not the simulator: it is
// an SMPP implementation nobody here wrote.
//
// It listens on 127.0.0.1 (port from SMPP_PORT, default 0 = any free port),
// accepts bind_transceiver with SMPP_SYSTEM_ID / SMPP_PASSWORD (else
// ESME_RINVSYSID / ESME_RINVPASWD), answers every submit_sm with a message
// id, sends a text delivery receipt (esm_class 0x04) for each submit that
// asked for one, and after the second submit a mobile-originated deliver_sm
// (UCS-2 text from SMPP_MO_FROM to SMPP_MO_TO). It prints one JSON object
// per line for what it saw and did; it exits after the ESME unbinds, or
// after 60 s whatever happens.

'use strict';

const smpp = require('smpp');

const SYSTEM_ID = process.env.SMPP_SYSTEM_ID || 'smppgw';
const PASSWORD = process.env.SMPP_PASSWORD || 'secret';
const PORT = Number(process.env.SMPP_PORT || 0);
const MO_FROM = process.env.SMPP_MO_FROM || '447911123456';
const MO_TO = process.env.SMPP_MO_TO || '447400123456';
const MO_TEXT = process.env.SMPP_MO_TEXT || 'はい、明日で大丈夫です';

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function text(field) {
  if (field == null) return '';
  if (typeof field === 'string') return field;
  if (Buffer.isBuffer(field)) return field.toString('hex');
  return typeof field.message === 'string' ? field.message : String(field.message);
}

function yymmddhhmm(d) {
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes());
}

let nextId = 7700;
let submits = 0;

const server = smpp.createServer((session) => {
  let bound = false;
  session.on('error', (e) => out({ event: 'session_error', error: String(e) }));

  session.on('bind_transceiver', (pdu) => {
    let status = smpp.ESME_ROK;
    if (pdu.system_id !== SYSTEM_ID) status = smpp.ESME_RINVSYSID;
    else if (pdu.password !== PASSWORD) status = smpp.ESME_RINVPASWD;
    out({
      event: 'bind_transceiver',
      system_id: pdu.system_id,
      interface_version: pdu.interface_version,
      status,
    });
    session.send(pdu.response({ command_status: status, system_id: 'node-smsc' }));
    if (status !== smpp.ESME_ROK) {
      session.close();
      return;
    }
    bound = true;
  });

  session.on('enquire_link', (pdu) => session.send(pdu.response()));

  session.on('submit_sm', (pdu) => {
    if (!bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    submits += 1;
    const id = String(nextId++);
    const message = text(pdu.short_message);
    out({
      event: 'submit_sm',
      source_addr: pdu.source_addr,
      source_addr_ton: pdu.source_addr_ton,
      destination_addr: pdu.destination_addr,
      data_coding: pdu.data_coding,
      esm_class: pdu.esm_class,
      registered_delivery: pdu.registered_delivery,
      message,
      message_id: id,
    });
    session.send(pdu.response({ message_id: id }));

    if (pdu.registered_delivery & 0x01) {
      const now = yymmddhhmm(new Date());
      const quoted = message.slice(0, 20).replace(/[^ -~]/g, '?');
      const receipt = `id:${id} sub:001 dlvrd:001 submit date:${now} done date:${now} ` +
        `stat:DELIVRD err:000 text:${quoted}`;
      session.deliver_sm({
        source_addr_ton: pdu.dest_addr_ton,
        source_addr_npi: pdu.dest_addr_npi,
        source_addr: pdu.destination_addr,
        dest_addr_ton: pdu.source_addr_ton,
        dest_addr_npi: pdu.source_addr_npi,
        destination_addr: pdu.source_addr,
        esm_class: 0x04,
        data_coding: 0,
        short_message: receipt,
      }, (resp) => out({ event: 'deliver_sm_resp', kind: 'receipt', id, status: resp.command_status }));
      out({ event: 'receipt_sent', id, text: receipt });
    }

    if (submits === 2) {
      session.deliver_sm({
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: MO_FROM,
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: MO_TO,
        esm_class: 0,
        short_message: MO_TEXT,
      }, (resp) => out({ event: 'deliver_sm_resp', kind: 'mo', status: resp.command_status }));
      out({ event: 'mo_sent', from: MO_FROM, to: MO_TO, text: MO_TEXT });
    }
  });

  session.on('unbind', (pdu) => {
    out({ event: 'unbind' });
    session.send(pdu.response());
    session.close(() => {
      out({ event: 'closed' });
      server.close();
      process.exit(0);
    });
  });
});

server.listen(PORT, '127.0.0.1', () => {
  out({ event: 'listening', port: server.address().port });
});

setTimeout(() => {
  out({ event: 'timeout' });
  process.exit(2);
}, 60000).unref();
