//! The client side: one connection per thread and server, made on first
//! use, as Python's proxies do.
//!
//! A local client connects to the server's abstract Unix socket, passes
//! the handshake, and asks for a shared-memory connection ([`Request::Local`]):
//! the reply carries its descriptors, and every request after that goes
//! through it (a round trip costs no system call when both sides are
//! running). The socket stays open: it is how the server learns that the
//! client is gone. A remote client speaks the same frames over TCP.
//!
//! A connection belongs to the thread that made it (a thread waiting for a
//! lock does not hold up the others) and to the process: a child made with
//! `fork` inherits its parent's connections, drops them unused, and
//! connects anew.

use std::cell::RefCell;
use std::io;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};

use mproc_os::connection::{Connection, RecvError, SendError};
use mproc_os::futex::Deadline;
use mproc_os::process::current_pid;
use mproc_os::share::{self, Token};
use mproc_os::socket::Stream;
use serde::{Deserialize, Serialize};

use super::ManagerError;
use super::auth::{self, MAX_MESSAGE, Wire};
use super::protocol::{
    Answer, Fault, FrameError, MAX_FRAME, Reply, Request, read_frame, write_frame,
};
use super::server::TcpWire;

/// Where a manager's server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Address {
    /// An abstract Unix socket name (this host).
    Local(String),
    /// A TCP address, `host:port`.
    Tcp(String),
}

/// A connection to a server.
enum Link {
    /// Requests through shared memory; the socket is kept open for the
    /// server to see when this process is gone.
    Shared {
        connection: Connection<Vec<u8>>,
        _socket: Stream,
    },
    /// Requests over TCP.
    Tcp(TcpStream),
}

struct Entry {
    pid: u32,
    address: Address,
    authkey: Vec<u8>,
    link: Link,
}

thread_local! {
    static LINKS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// The handshake over a Unix stream socket, from the client's side.
struct UnixWire<'a>(&'a Stream);

/// How long the handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Wire for UnixWire<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), ManagerError> {
        self.0.send_message(bytes, &[]).map_err(gone_or_os)
    }

    fn recv(&mut self) -> Result<Vec<u8>, ManagerError> {
        match self
            .0
            .recv_message(MAX_MESSAGE, Deadline::after(HANDSHAKE_TIMEOUT))
        {
            Ok(Some(message)) => Ok(message.bytes),
            // A server that refuses the key closes the connection.
            Ok(None) => Err(ManagerError::Authentication),
            Err(error) => Err(gone_or_os(error)),
        }
    }
}

fn gone_or_os(error: mproc_os::Error) -> ManagerError {
    use rustix::io::Errno;
    match error.errno() {
        Some(Errno::PIPE | Errno::CONNRESET | Errno::CONNREFUSED | Errno::NOENT) => {
            ManagerError::ServerGone
        }
        _ => ManagerError::Os(error),
    }
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> ManagerError {
    move |source| match source.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotFound => ManagerError::ServerGone,
        _ => ManagerError::Io { context, source },
    }
}

impl Link {
    /// Connects to a server and passes the handshake.
    fn connect(address: &Address, authkey: &[u8]) -> Result<Link, ManagerError> {
        match address {
            Address::Local(name) => {
                let addr = UnixAddr::from_abstract_name(name.as_bytes()).map_err(|source| {
                    ManagerError::Io {
                        context: "naming the manager's socket",
                        source,
                    }
                })?;
                let socket = UnixStream::connect_addr(&addr)
                    .map_err(io_error("connecting to the manager"))?;
                let socket = Stream::from_fd(OwnedFd::from(socket));
                auth::client_handshake(&mut UnixWire(&socket), authkey)?;
                let request = postcard::to_allocvec(&Request::Local)?;
                socket.send_message(&request, &[]).map_err(gone_or_os)?;
                let message = socket
                    .recv_message(MAX_FRAME, Deadline::after(HANDSHAKE_TIMEOUT))
                    .map_err(gone_or_os)?
                    .ok_or(ManagerError::ServerGone)?;
                let reply: Result<Token<Connection<Vec<u8>>>, Fault> =
                    share::decode(&message.bytes, message.fds)
                        .map_err(|error| ManagerError::Protocol(error.to_string()))?;
                let connection = reply.map_err(ManagerError::from)?.attach()?;
                Ok(Link::Shared {
                    connection,
                    _socket: socket,
                })
            }
            Address::Tcp(addr) => {
                let mut stream =
                    TcpStream::connect(addr).map_err(io_error("connecting to the manager"))?;
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
                auth::client_handshake(&mut TcpWire(&mut stream), authkey).map_err(|error| {
                    match error {
                        // The server closes the connection of a wrong key.
                        ManagerError::ServerGone => ManagerError::Authentication,
                        error => error,
                    }
                })?;
                let _ = stream.set_read_timeout(None);
                Ok(Link::Tcp(stream))
            }
        }
    }

    /// Sends a request and waits for its reply.
    fn round_trip(&mut self, request: &[u8]) -> Result<Vec<u8>, ManagerError> {
        match self {
            Link::Shared { connection, .. } => {
                connection
                    .send_bytes(request)
                    .map_err(|error| match error {
                        SendError::Disconnected(()) => ManagerError::ServerGone,
                        error => ManagerError::Protocol(error.to_string()),
                    })?;
                connection
                    .recv_bytes_max(MAX_FRAME)
                    .map_err(|error| match error {
                        RecvError::Disconnected => ManagerError::ServerGone,
                        error => ManagerError::Protocol(error.to_string()),
                    })
            }
            Link::Tcp(stream) => {
                write_frame(stream, request).map_err(io_error("sending a request"))?;
                read_frame(stream, MAX_FRAME).map_err(|error| match error {
                    FrameError::Closed => ManagerError::ServerGone,
                    FrameError::TooLarge(len) => ManagerError::TooLarge {
                        len,
                        max: MAX_FRAME as u64,
                    },
                    FrameError::Io(source) => io_error("receiving a reply")(source),
                })
            }
        }
    }
}

/// Connects this thread to the server at `address` now (if it is not
/// already), so that errors such as a wrong authkey show at once.
pub(crate) fn connect(address: &Address, authkey: &[u8]) -> Result<(), ManagerError> {
    with_link(address, authkey, |_| Ok(()))
}

/// Runs `f` on this thread's connection to `address`, made first if
/// needed. A connection that failed is dropped, so the next call connects
/// anew.
fn with_link<R>(
    address: &Address,
    authkey: &[u8],
    f: impl FnOnce(&mut Link) -> Result<R, ManagerError>,
) -> Result<R, ManagerError> {
    let pid = current_pid();
    // Past this thread's end (a guard dropped by a thread-local's
    // destructor) there is no connection to use.
    let links = LINKS.try_with(|links| -> Result<R, ManagerError> {
        let mut links = links
            .try_borrow_mut()
            .map_err(|_| ManagerError::Protocol("a request inside a request".into()))?;
        // Inherited through `fork`: not ours to use.
        links.retain(|entry| entry.pid == pid);
        let at = match links
            .iter()
            .position(|entry| entry.address == *address && entry.authkey == authkey)
        {
            Some(at) => at,
            None => {
                let link = Link::connect(address, authkey)?;
                links.push(Entry {
                    pid,
                    address: address.clone(),
                    authkey: authkey.to_vec(),
                    link,
                });
                links.len() - 1
            }
        };
        let result = f(&mut links[at].link);
        if matches!(
            result,
            Err(ManagerError::ServerGone | ManagerError::Io { .. } | ManagerError::Protocol(_))
        ) {
            links.swap_remove(at);
        }
        result
    });
    links.unwrap_or(Err(ManagerError::ServerGone))
}

/// Sends `request` to the server at `address` and returns its answer.
pub(crate) fn call(
    address: &Address,
    authkey: &[u8],
    request: &Request,
) -> Result<Answer, ManagerError> {
    let bytes = postcard::to_allocvec(request)?;
    if bytes.len() > MAX_FRAME {
        return Err(ManagerError::TooLarge {
            len: bytes.len() as u64,
            max: MAX_FRAME as u64,
        });
    }
    let reply = with_link(address, authkey, |link| link.round_trip(&bytes))?;
    let reply: Reply =
        postcard::from_bytes(&reply).map_err(|error| ManagerError::Protocol(error.to_string()))?;
    reply.map_err(ManagerError::from)
}

/// Drops this thread's connection to `address` (after a shutdown).
pub(crate) fn forget(address: &Address) {
    let _ = LINKS.try_with(|links| {
        if let Ok(mut links) = links.try_borrow_mut() {
            links.retain(|entry| entry.address != *address);
        }
    });
}
