//! `tollgate ivr`: the menus as the node reads them from `[ivr] url`
//! (with the rows it leaves out and why), and a walk through them with
//! the real engine, digit by digit, to try a menu without a phone.

use super::config::IvrConfig;
use super::engine::{Engine, Output};
use super::store::MenuStore;
use crate::time::Now;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum IvrCommand {
    /// The menus and their options (creating and seeding the tables as
    /// the node does), and every row left out with the reason.
    Menus {
        #[arg(long)]
        json: bool,
    },
    /// Enter MENU and press DIGITS one after the other, each prompt played
    /// to its end first: prints what the caller hears and where the IVR
    /// lets the call go. `t` in DIGITS waits out the digit timeout.
    Walk { menu: String, digits: String },
}

pub fn run(cfg: &IvrConfig, cmd: IvrCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    let (menus, problems) = rt.block_on(async {
        let store = MenuStore::connect(&cfg.url, cfg.seed_demo).await?;
        store.load().await
    })?;
    match cmd {
        IvrCommand::Menus { json: true } => {
            let menus: Vec<_> = menus
                .iter()
                .map(|m| {
                    let options: serde_json::Map<_, _> = m
                        .options
                        .iter()
                        .map(|(d, a)| (d.to_string(), json!(a.to_string())))
                        .collect();
                    json!({"id": m.id, "name": m.name, "welcome": m.welcome.to_string(), "options": options})
                })
                .collect();
            println!("{}", json!({"menus": menus, "left_out": problems}));
        }
        IvrCommand::Menus { json: false } => {
            for m in menus.iter() {
                println!("{} ({}): {}", m.id, m.name, m.welcome);
                for (d, a) in &m.options {
                    println!("  {d}: {a}");
                }
            }
            for p in &problems {
                println!("left out: {p}");
            }
        }
        IvrCommand::Walk { menu, digits } => walk(cfg, Engine::new(cfg, menus), &menu, &digits)?,
    }
    Ok(())
}

/// One caller through `menu` on virtual time.
fn walk(cfg: &IvrConfig, mut e: Engine, menu: &str, digits: &str) -> Result<()> {
    let mut now = Now::real();
    e.start(now, "walk", menu)?;
    let mut keys = digits.chars().filter(|c| !c.is_whitespace());
    let mut playing = None;
    loop {
        while let Some(o) = e.poll_output() {
            match o {
                Output::Play { prompt, token, .. } => {
                    println!("plays: {prompt}");
                    playing = Some(token);
                }
                Output::Stop { .. } => {}
                Output::Transfer { target, .. } => {
                    return finish(&mut e, format!("transfer {target}"))
                }
                Output::Queue { queue, .. } => return finish(&mut e, format!("queue {queue}")),
                Output::Hangup { .. } => return finish(&mut e, "hangup".into()),
            }
        }
        if let Some(token) = playing.take() {
            e.prompt_done(now, "walk", token);
            continue;
        }
        match keys.next() {
            Some('t') => {
                now = now.after(cfg.digit_timeout());
                println!("waits {} ms", cfg.digit_timeout_ms);
                e.handle_timeout(now);
            }
            Some(d) => {
                println!("presses: {d}");
                e.handle_digit(now, "walk", d);
            }
            None => bail!("the digits ran out with the caller still in the IVR"),
        }
    }
}

fn finish(e: &mut Engine, exit: String) -> Result<()> {
    let trail = e.end("walk").unwrap_or_default();
    println!("then: {exit}\nmenus: {}", trail.menus.join(" > "));
    Ok(())
}
