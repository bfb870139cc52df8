//! Releases on disk: layout, the atomic `current` switch, retention, history (with the release
//! ledger) and the lock.

pub mod diff;
pub mod history;
pub mod kept;
pub mod layout;
pub mod ledger;
pub mod lock;
pub mod retention;
pub mod switch;

pub use history::History;
pub use layout::Layout;
pub use lock::DeployLock;
