//! The error type of mproc-os.
//!
//! Every fallible function in this crate returns [`Result`]. A failed system
//! call keeps its name and `errno`, so callers can match on the exact cause
//! (for example `EEXIST` from [`Region::create_named`]).
//!
//! [`Region::create_named`]: crate::shm::Region::create_named

use core::fmt;

use mproc_core::LayoutError;
use rustix::io::Errno;

use crate::share::TokenError;

/// Errors of mproc-os.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    Os {
        /// The call that failed, as its man page names it (`"mmap"`,
        /// `"shm_open"`, ...).
        call: &'static str,
        /// The error number it returned.
        errno: Errno,
    },
    /// A shared region does not hold the object expected, or cannot hold it.
    Layout(LayoutError),
    /// A shared-memory name is unusable.
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A [`Token`](crate::share::Token) cannot be made for this object, or
    /// attached as the type asked for.
    Token(TokenError),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// The `errno` of a failed system call, if this is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Os { call, errno } => write!(f, "{call} failed: {errno}"),
            Self::Layout(err) => write!(f, "bad shared-memory layout: {err}"),
            Self::InvalidName { name, reason } => {
                write!(f, "invalid shared-memory name {name:?}: {reason}")
            }
            Self::Token(err) => write!(f, "bad token: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Layout(err) => Some(err),
            Self::Token(err) => Some(err),
            Self::Os { .. } | Self::InvalidName { .. } => None,
        }
    }
}

impl From<LayoutError> for Error {
    fn from(err: LayoutError) -> Self {
        Self::Layout(err)
    }
}

/// Maps the `errno` of `call` to an [`Error::Os`], for
/// `.map_err(os("mmap"))`.
pub(crate) fn os(call: &'static str) -> impl FnOnce(Errno) -> Error {
    move |errno| Error::Os { call, errno }
}
