//! `createroom TITLE [--staff-only]`: inserts a `chat_room` row (what the Django admin's
//! "Add room" form does) and prints the new id alone on a line.

use std::process::ExitCode;

use crate::config::Settings;

use super::{CommandError, CommandResult, open_migrated_store};

/// `Room.title` is `CharField(max_length=255)`.
const TITLE_MAX_LENGTH: usize = 255;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The room's title (required, at most 255 characters; surrounding spaces are stripped as
    /// Django's form does).
    pub title: String,
    /// Only staff users may join the room.
    #[arg(long = "staff-only")]
    pub staff_only: bool,
}

/// Django's form cleaning for the title: stripped, required, at most 255 characters.
fn clean_title(raw: &str) -> Result<String, CommandError> {
    let title = raw.trim();
    if title.is_empty() {
        return Err(CommandError::new("title: This field is required."));
    }
    let n = title.chars().count();
    if n > TITLE_MAX_LENGTH {
        return Err(CommandError::new(format!(
            "title: Ensure this value has at most {TITLE_MAX_LENGTH} characters (it has {n})."
        )));
    }
    Ok(title.to_string())
}

pub async fn run(settings: &Settings, args: &Args) -> CommandResult {
    let title = clean_title(&args.title)?;
    let store = open_migrated_store(settings).await?;
    let id = store.create_room(&title, args.staff_only).await?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(clean_title("  Lobby ").unwrap(), "Lobby");
        assert!(clean_title("   ").is_err());
        assert!(clean_title(&"x".repeat(256)).is_err());
        assert!(clean_title(&"é".repeat(255)).is_ok());
    }
}
