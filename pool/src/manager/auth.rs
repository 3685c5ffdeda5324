//! The authkey challenge, in both directions, as Python's
//! `multiprocessing.connection` does it (`deliver_challenge` /
//! `answer_challenge`, SHA-256 flavour).
//!
//! The challenger sends `#CHALLENGE#{sha256}` and 32 random bytes; the
//! other side answers `{sha256}` and the HMAC-SHA256 of everything after
//! `#CHALLENGE#` under the authkey; the challenger compares in constant
//! time and sends `#WELCOME#` or `#FAILURE#` (and then closes). The server
//! challenges first, then the client challenges the server, so neither
//! side talks to a peer that does not know the key.

use std::io::Read;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ManagerError;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const DIGEST: &[u8] = b"{sha256}";
/// Random bytes in a challenge.
const NONCE: usize = 32;
/// The longest message of the handshake.
pub(crate) const MAX_MESSAGE: usize = 256;

/// One side of a framed connection during the handshake.
pub(crate) trait Wire {
    /// Sends one message.
    fn send(&mut self, bytes: &[u8]) -> Result<(), ManagerError>;
    /// Receives one message of at most [`MAX_MESSAGE`] bytes.
    fn recv(&mut self) -> Result<Vec<u8>, ManagerError>;
}

/// `n` random bytes from the kernel.
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, ManagerError> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|source| ManagerError::Io {
            context: "reading /dev/urandom",
            source,
        })?;
    Ok(bytes)
}

fn mac(authkey: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(authkey).unwrap_or_else(|_| unreachable!())
}

/// The answer to `message` (what followed `#CHALLENGE#`).
fn response(authkey: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = mac(authkey);
    mac.update(message);
    let mut answer = DIGEST.to_vec();
    answer.extend_from_slice(&mac.finalize().into_bytes());
    answer
}

/// Challenges the peer: it must prove it knows `authkey`.
pub(crate) fn deliver_challenge(wire: &mut impl Wire, authkey: &[u8]) -> Result<(), ManagerError> {
    let mut message = DIGEST.to_vec();
    message.extend_from_slice(&random_bytes(NONCE)?);
    wire.send(&[CHALLENGE, &message].concat())?;
    let answer = wire.recv()?;
    let good = answer.strip_prefix(DIGEST).is_some_and(|tag| {
        let mut mac = mac(authkey);
        mac.update(&message);
        // Constant-time comparison.
        mac.verify_slice(tag).is_ok()
    });
    if good {
        wire.send(WELCOME)
    } else {
        let _ = wire.send(FAILURE);
        Err(ManagerError::Authentication)
    }
}

/// Answers the peer's challenge with `authkey`.
pub(crate) fn answer_challenge(wire: &mut impl Wire, authkey: &[u8]) -> Result<(), ManagerError> {
    let challenge = wire.recv()?;
    let message = challenge
        .strip_prefix(CHALLENGE)
        .ok_or(ManagerError::Authentication)?;
    wire.send(&response(authkey, message))?;
    if wire.recv()? == WELCOME {
        Ok(())
    } else {
        Err(ManagerError::Authentication)
    }
}

/// The server's side: challenge the client, then answer its challenge.
pub(crate) fn server_handshake(wire: &mut impl Wire, authkey: &[u8]) -> Result<(), ManagerError> {
    deliver_challenge(wire, authkey)?;
    answer_challenge(wire, authkey)
}

/// The client's side: answer the server's challenge, then challenge it.
pub(crate) fn client_handshake(wire: &mut impl Wire, authkey: &[u8]) -> Result<(), ManagerError> {
    answer_challenge(wire, authkey)?;
    deliver_challenge(wire, authkey)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, Sender, channel};

    use super::*;

    struct Half(Sender<Vec<u8>>, Receiver<Vec<u8>>);

    impl Wire for Half {
        fn send(&mut self, bytes: &[u8]) -> Result<(), ManagerError> {
            self.0
                .send(bytes.to_vec())
                .map_err(|_| ManagerError::ServerGone)
        }
        fn recv(&mut self) -> Result<Vec<u8>, ManagerError> {
            self.1.recv().map_err(|_| ManagerError::ServerGone)
        }
    }

    fn pair() -> (Half, Half) {
        let (a, b) = (channel(), channel());
        (Half(a.0, b.1), Half(b.0, a.1))
    }

    fn run(server_key: &'static [u8], client_key: &'static [u8]) -> (bool, bool) {
        let (mut server, mut client) = pair();
        let server = std::thread::spawn(move || server_handshake(&mut server, server_key).is_ok());
        let client = client_handshake(&mut client, client_key).is_ok();
        (server.join().unwrap(), client)
    }

    #[test]
    fn same_key_passes_both_ways() {
        assert_eq!(run(b"secret", b"secret"), (true, true));
    }

    #[test]
    fn different_keys_fail_both_sides() {
        assert_eq!(run(b"secret", b"guess"), (false, false));
    }

    #[test]
    fn answer_is_python_s_hmac_sha256() {
        // RFC 4231, test case 2.
        let answer = response(b"Jefe", b"what do ya want for nothing?");
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hex: String = answer[DIGEST.len()..]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(&answer[..DIGEST.len()], DIGEST);
        assert_eq!(hex, expected);
    }
}
