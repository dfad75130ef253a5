//! The IVR: menus read from the database (`ivr_menus`, `ivr_menu_options`)
//! and the engine that walks a caller through them.
//!
//! `menu` is the model (menus, options, actions, prompts) and checks rows
//! as they are read; `store` reads and seeds the tables (SQLite,
//! PostgreSQL or MariaDB through sqlx); `engine` is the sans-IO state
//! machine of each call in the IVR: digits, finished prompts and its own
//! digit timers in, prompts to play, transfers, queueing and hang-ups out.
//! `config` is the `[ivr]` section and `cli` the `tollgate ivr` command.

pub mod cli;
pub mod config;
pub mod engine;
pub mod menu;
pub mod store;

#[cfg(test)]
mod tests;
