"""The chaos suite's network: one fault-injecting TCP proxy in front of each node.

Every node is reached by its peers at its proxy address (127.0.0.1, a port of its own),
never at its real listen port; clients reach nodes directly. The proxy forwards bytes
unchanged. It learns which node dialed a connection from the kernel: the dialer's socket
is looked up by its address with netlink sock_diag (one hash lookup, however many sockets
the machine holds) and its inode matched with the sockets open in each node process
(/proc/PID/fd), on a worker thread, so that no connection's bytes wait for it. So a
partition is a relation between node ids, exact for every link whichever side dialed it,
and membership changes need no rewiring: a node added later is reached through its proxy
too.

Faults, each in one of two modes:
  * block(pairs, "drop"): bytes from node a to node b are read and discarded, silently
    (no reset, no refusal: to the sender the peer simply goes quiet). At heal every
    connection that discarded bytes is closed (its stream lost data, as TCP would have
    given up on it) and the nodes redial.
  * block(pairs, "stall"): bytes from a to b are left unread, as TCP leaves segments it
    keeps retransmitting into a dead path: the sender's socket buffers fill, its writes
    stop completing, and nothing tells either side. At heal the backlog is delivered,
    late and in order, on the same connection, as TCP would once the path is back.
  A one-way fault is one pair; a partition blocks both directions of every cut pair.
  A connection dialed while either direction of its pair is blocked never reaches the
  target (its TCP handshake could not have completed): the proxy reads and discards what
  the dialer sends, answers nothing, frees it as soon as the dialer gives up, and closes
  it at heal. So a node redialing a cut peer costs the proxy one socket at a time.
Connections from processes that are not nodes (clients, rlr-ctl) are never blocked.
"""

import asyncio
import concurrent.futures
import os
import socket
import struct
import threading


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_TCP_LISTEN = 10
_NLMSG_HDR = struct.Struct("=IHHII")
_DIAG_REQ = struct.Struct("=BBxxI")  # inet_diag_req_v2 up to its inet_diag_sockid
_SOCKID = struct.Struct("!HH16s16s")  # inet_diag_sockid: ports, src, dst (network order) ...
_SOCKID_TAIL = struct.Struct("=III")  # ... then interface and cookie (host order)
_DIAG_MSG = struct.Struct("=BBBB")  # inet_diag_msg up to its inet_diag_sockid
# In a reply, idiag_inode follows the sockid and four u32s: expires, rqueue, wqueue, uid.
_DIAG_MSG_INODE = _NLMSG_HDR.size + _DIAG_MSG.size + _SOCKID.size + _SOCKID_TAIL.size + 16


def _dialer_inode(dialer_port, listen_port):
    """The inode of the live socket 127.0.0.1:dialer_port -> 127.0.0.1:listen_port, or None.

    One exact lookup in the kernel's socket hash through netlink sock_diag: its cost does
    not depend on how many sockets the machine holds. A socket its owner has closed
    (TIME_WAIT, an orphaned FIN_WAIT: no inode) is None, as is a listener the lookup may
    fall back to, as is any error."""
    lo = socket.inet_aton("127.0.0.1").ljust(16, b"\0")
    req = (_DIAG_REQ.pack(socket.AF_INET, socket.IPPROTO_TCP, 0xFFFFFFFF)
           + _SOCKID.pack(dialer_port, listen_port, lo, lo)
           + _SOCKID_TAIL.pack(0, 0xFFFFFFFF, 0xFFFFFFFF))  # any interface, no cookie
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(1.0)
            nl.sendto(_NLMSG_HDR.pack(_NLMSG_HDR.size + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
                      + req, (0, 0))
            reply = nl.recv(65536)
    except OSError:
        return None
    if len(reply) < _DIAG_MSG_INODE + 4 or _NLMSG_HDR.unpack_from(reply, 0)[1] != _SOCK_DIAG_BY_FAMILY:
        return None  # NLMSG_ERROR (ENOENT: no such socket)
    _, state, _, _ = _DIAG_MSG.unpack_from(reply, _NLMSG_HDR.size)
    sport, dport, src, dst = _SOCKID.unpack_from(reply, _NLMSG_HDR.size + _DIAG_MSG.size)
    (inode,) = struct.unpack_from("=I", reply, _DIAG_MSG_INODE)
    if state == _TCP_LISTEN or (sport, dport, src, dst) != (dialer_port, listen_port, lo, lo) or inode == 0:
        return None
    return inode


def _check_dialer_lookup():
    """Raises unless _dialer_inode finds a loopback connection's socket: without it every
    connection between nodes would be refused."""
    with socket.socket() as listener, socket.socket() as dialer:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        dialer.connect(listener.getsockname())
        listener.accept()[0].close()
        want = os.fstat(dialer.fileno()).st_ino
        got = _dialer_inode(dialer.getsockname()[1], listener.getsockname()[1])
        if got != want:
            raise RuntimeError("netproxy: the kernel's sock_diag lookup found socket %r, not %d" % (got, want))


def _pid_owns_inode(pid, inode):
    target = "socket:[%d]" % inode
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                return True
        except OSError:
            continue
    return False


class Net:
    """Partition state shared by all proxies, and the asyncio loop they run on."""

    def __init__(self):
        _check_dialer_lookup()
        self._lock = threading.Lock()
        self._blocked = {}  # (from_id, to_id) -> "drop" | "stall"
        self._pids = {}  # node id -> pid of its current process
        self._conns = set()
        self._proxies = []
        self.loop = asyncio.new_event_loop()
        # Identification reads /proc/PID/fd of every node: off the loop, so that no
        # connection's bytes wait for it.
        self._identifier = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaos-identify")
        self._thread = threading.Thread(target=self._run, name="chaos-net", daemon=True)
        self._thread.start()
        self.connections_identified = 0
        self.connections_unidentified = 0
        self.connections_held = 0

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # -- state --------------------------------------------------------------------
    def set_pid(self, node_id, pid):
        with self._lock:
            if pid is None:
                self._pids.pop(node_id, None)
            else:
                self._pids[node_id] = pid

    def block(self, pairs, mode="drop"):
        assert mode in ("drop", "stall")
        with self._lock:
            for pair in pairs:
                self._blocked[pair] = mode

    def heal(self):
        with self._lock:
            self._blocked.clear()
        asyncio.run_coroutine_threadsafe(self._close_tainted(), self.loop).result(timeout=10)

    def blocked(self, a, b):
        """None when bytes from a to b flow, else the mode of the block."""
        if a is None or b is None:
            return None
        with self._lock:
            return self._blocked.get((a, b))

    def identify(self, dialer_port, listen_port):
        """Who dialed 127.0.0.1:dialer_port -> 127.0.0.1:listen_port: (True, node id) for
        a node, (True, None) for any other process, (False, None) when no process holds
        the dialer's socket (not found, or already closed). Reads /proc/PID/fd of each
        node: never call it on the loop."""
        inode = _dialer_inode(dialer_port, listen_port)
        if inode is None:
            return False, None
        with self._lock:
            pids = dict(self._pids)
        for node_id, pid in pids.items():
            if _pid_owns_inode(pid, inode):
                return True, node_id
        return True, None

    # -- proxies ------------------------------------------------------------------
    def add_proxy(self, node_id, target_port):
        """Starts a proxy for node_id (real port target_port); returns its port."""
        fut = asyncio.run_coroutine_threadsafe(self._start_proxy(node_id, target_port), self.loop)
        return fut.result(timeout=10)

    async def _start_proxy(self, node_id, target_port):
        server = await asyncio.start_server(
            lambda r, w: self._on_accept(node_id, target_port, r, w), "127.0.0.1", 0)
        self._proxies.append(server)
        return server.sockets[0].getsockname()[1]

    async def _on_accept(self, node_id, target_port, reader, writer):
        sock = writer.get_extra_info("socket")
        peer_port = writer.get_extra_info("peername")[1]
        listen_port = sock.getsockname()[1]
        src = None
        found = False
        for _ in range(3):
            found, src = await self.loop.run_in_executor(self._identifier, self.identify, peer_port, listen_port)
            if found:
                break
            await asyncio.sleep(0.005)
        if not found:
            # Cannot tell who dialed: refuse rather than let a cut link through.
            self.connections_unidentified += 1
            writer.close()
            return
        self.connections_identified += 1
        if self.blocked(src, node_id) or self.blocked(node_id, src):
            await self._hold_unconnected(src, node_id, reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        for w in (writer, up_writer):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(src, node_id, writer, up_writer)
        self._conns.add(conn)
        await asyncio.gather(self._pump(conn, reader, up_writer, src, node_id),
                             self._pump(conn, up_reader, writer, node_id, src),
                             return_exceptions=True)
        conn.close()
        self._conns.discard(conn)

    async def _hold_unconnected(self, src, dst, reader, writer):
        """A connection dialed across a cut path. Its TCP handshake would never have
        completed, so it never reaches the target: bytes the dialer sends are read and
        discarded (so that its close is seen and the socket freed at once, however often
        it redials), nothing is ever sent back, and heal closes it so that the dialer
        redials on a path that works."""
        self.connections_held += 1
        conn = _Conn(src, dst, writer, None)
        conn.tainted = True
        self._conns.add(conn)
        try:
            while not conn.closed:
                if not await reader.read(65536):
                    break
        except (OSError, asyncio.CancelledError):
            pass
        conn.close()
        self._conns.discard(conn)

    async def _pump(self, conn, reader, writer, src, dst):
        try:
            while not conn.closed:
                while self.blocked(src, dst) == "stall" and not conn.closed:
                    await asyncio.sleep(0.01)
                data = await reader.read(65536)
                if not data:
                    break
                mode = self.blocked(src, dst)
                if mode == "stall":
                    # Blocked while this read was pending: hold the bytes until heal.
                    while self.blocked(src, dst) == "stall" and not conn.closed:
                        await asyncio.sleep(0.01)
                    mode = self.blocked(src, dst)
                if mode == "drop":
                    conn.tainted = True
                    continue
                if conn.tainted:
                    break  # the stream lost bytes: it cannot go on
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        conn.close()

    async def _close_tainted(self):
        for c in list(self._conns):
            if c.tainted:
                c.close()

    def close(self):
        async def stop():
            for s in self._proxies:
                s.close()
            for c in list(self._conns):
                c.close()
            # Let every connection's task end here rather than be destroyed pending.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - closing at exit must not raise
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self._identifier.shutdown(wait=True, cancel_futures=True)
        if not self._thread.is_alive():
            self.loop.close()


class _Conn:
    def __init__(self, src, dst, down_writer, up_writer):
        self.src = src
        self.dst = dst
        self.tainted = False
        self.closed = False
        self._writers = (down_writer, up_writer)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for w in self._writers:
            if w is None:
                continue
            try:
                w.close()
            except Exception:  # noqa: BLE001
                pass
