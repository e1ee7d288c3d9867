"""A TCP proxy for fault tests: forwards 127.0.0.1:<port> to a PostgreSQL server,
and can pause traffic (stop forwarding, keep every socket open), resume it, or
reset every connection (RST both ways, as a broken network would).

One thread runs a selector over the listening socket and every pair of sockets.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["TcpProxy", "tcp_proxy"]

_CHUNK = 65536


class TcpProxy:
    """Forward connections on ``port`` to ``(target_host, target_port)``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._registered: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._paused = threading.Event()
        self._commands: list[str] = []
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._wakeup_r.setblocking(False)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, "wake")
        self.accepted = 0
        self.resets = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="tcp-proxy", daemon=True)
        self._thread.start()

    # --- control (any thread) ----------------------------------------------------------

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._peers) // 2

    def pause(self) -> None:
        """Stop forwarding bytes (both ways); sockets stay open, new ones are held."""
        self._paused.set()
        self._command("noop")

    def resume(self) -> None:
        self._paused.clear()
        self._command("noop")

    def reset_all(self) -> None:
        """Reset every open connection (both sides get RST); new ones are accepted."""
        self._command("reset")

    def close(self) -> None:
        self._command("stop")
        self._thread.join(5)

    def _command(self, name: str) -> None:
        done = threading.Event()
        with self._lock:
            self._commands.append(name)
            self._done = done
        self._wakeup_w.send(b"x")
        if threading.current_thread() is not self._thread:
            done.wait(5)

    # --- the loop ------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopped:
            for key, _ in self._selector.select(timeout=0.1):
                data = key.data
                if data == "wake":
                    self._run_commands()
                elif key.fileobj is self._listener:
                    self._accept()
                elif not self._paused.is_set():
                    self._forward(key.fileobj)  # type: ignore[arg-type]
            self._update_interest()
        for sock in list(self._peers):
            sock.close()
        self._listener.close()

    def _run_commands(self) -> None:
        try:
            while self._wakeup_r.recv(1024):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            commands, self._commands = self._commands, []
            done = getattr(self, "_done", None)
        for name in commands:
            if name == "reset":
                for sock in list(self._peers):
                    self._drop(sock, reset=True)
                self.resets += 1
            elif name == "stop":
                self._stopped = True
        if done is not None:
            done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(self._target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._peers[client] = server
            self._peers[server] = client
        self.accepted += 1

    def _update_interest(self) -> None:
        # Paused: stop reading, so each side's bytes wait in kernel buffers.
        paused = self._paused.is_set()
        for sock in list(self._peers):
            if paused and sock in self._registered:
                self._selector.unregister(sock)
                self._registered.discard(sock)
            elif not paused and sock not in self._registered:
                self._selector.register(sock, selectors.EVENT_READ, "peer")
                self._registered.add(sock)

    def _forward(self, sock: socket.socket) -> None:
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock, reset=False)
            return
        try:
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._drop(sock, reset=True)

    def _drop(self, sock: socket.socket, *, reset: bool) -> None:
        with self._lock:
            peer = self._peers.pop(sock, None)
            if peer is not None:
                self._peers.pop(peer, None)
        for s in (sock, peer):
            if s is None:
                continue
            if s in self._registered:
                self._selector.unregister(s)
                self._registered.discard(s)
            if reset:
                try:  # linger 0: close() sends RST instead of FIN
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            s.close()


@contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
