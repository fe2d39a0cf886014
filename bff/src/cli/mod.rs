//! The subcommands besides `serve`: `validate` (definitions against
//! specs), `diff` (breaking changes between two definition sets) and
//! `dev-token` (a development token).

pub mod dev_token;
pub mod diff;
pub mod validate;
