//! `createuser`: `createsuperuser`'s flags and prompts for a regular user (not staff, not
//! superuser). Prints `User created successfully.`.

use crate::config::Settings;

use super::CommandResult;
use super::createsuperuser::{Args, Kind, run as create};

pub async fn run(settings: &Settings, args: &Args) -> CommandResult {
    create(settings, args, Kind::User).await
}
