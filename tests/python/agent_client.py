#!/usr/bin/env python3
"""A client of the smppgw agent socket written with the Python standard
library only, to show the protocol (proto/agent-protocol.md) is usable from
outside Rust: hello, send, wait for Delivered, wait for the customer's reply,
end the chat. The Rust test that runs it injects the reply at the simulator
when this script prints `waiting-for-reply`.

usage: agent_client.py SOCKET SERVICE NUMBER
Prints one JSON line per step; exits non-zero on any surprise."""

import json
import socket
import sys
import time


class Agent:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(30)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("the daemon closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, op, **fields):
        self.next_id += 1
        rid = "py-%d" % self.next_id
        msg = dict(fields, id=rid, op=op)
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            line = self._line()
            if "event" in line and "id" not in line:
                self.events.append(line)
                continue
            if line.get("id") != rid:
                raise RuntimeError("answer for another id: %r" % line)
            if not line.get("ok"):
                raise RuntimeError("%s failed: %r" % (op, line.get("error")))
            return line["result"]

    def wait_event(self, pred, what, timeout=30):
        deadline = time.time() + timeout
        while True:
            for e in self.events:
                if pred(e):
                    self.events.remove(e)
                    return e
            if time.time() > deadline:
                raise RuntimeError("no %s event in %ss" % (what, timeout))
            line = self._line()
            if "event" in line:
                self.events.append(line)


def main():
    path, service, number = sys.argv[1:4]
    agent = Agent(path)
    hello = agent.request("hello", protocol="smppgw-agent/1", client="python-stdlib")
    print(json.dumps({"step": "hello", "protocol": hello["protocol"]}), flush=True)
    agent.request("subscribe", **{"from": 0})
    sent = agent.request("send", service=service, to=number, agent="py-agent",
                         text="Hello from a Python agent layer")
    print(json.dumps({"step": "accepted", "message": sent["message"]}), flush=True)
    msg = sent["message"]
    agent.wait_event(lambda e: e["event"] == "message_delivered" and e.get("message") == msg,
                     "message_delivered")
    print(json.dumps({"step": "delivered", "message": msg}), flush=True)
    print("waiting-for-reply", flush=True)
    reply = agent.wait_event(lambda e: e["event"] == "message_received"
                             and e.get("conversation") == sent["conversation"], "message_received")
    print(json.dumps({"step": "reply", "text": reply["text"]}), flush=True)
    ended = agent.request("end_chat", conversation=sent["conversation"], agent="py-agent")
    print(json.dumps({"step": "ended", "state": ended["state"]}), flush=True)


if __name__ == "__main__":
    main()
