//! The IVR on virtual time: menus from rows, the engine walking them, and
//! the store on a real SQLite file.

use super::config::IvrConfig;
use super::engine::{Engine, IvrError, Output};
use super::menu::{Action, MenuRow, Menus, OptionRow, Prompt, Target};
use super::store::MenuStore;
use crate::time::Now;
use std::time::Duration;

fn menu(id: &str, welcome: &str) -> MenuRow {
    MenuRow {
        menu_id: id.into(),
        name: format!("{id} menu"),
        welcome_message: welcome.into(),
    }
}

fn option(menu: &str, digit: &str, kind: &str, value: Option<&str>) -> OptionRow {
    OptionRow {
        menu_id: menu.into(),
        digit: digit.into(),
        action_type: kind.into(),
        action_value: value.map(str::to_string),
    }
}

/// The demo's shape: main (1 transfer, 2 queue, 3 billing, 4 play, #
/// hangup) and billing (9 back to main).
fn demo() -> Menus {
    let (menus, problems) = Menus::from_rows(
        vec![menu("main", "prompt:1"), menu("billing", "Billing.")],
        vec![
            option("main", "1", "transfer", Some("6000")),
            option("main", "2", "queue", Some("support")),
            option("main", "3", "menu", Some("billing")),
            option("main", "4", "play", Some("Open nine to five.")),
            option("main", "#", "hangup", None),
            option("billing", "9", "menu", Some("main")),
        ],
    );
    assert!(problems.is_empty(), "{problems:?}");
    menus
}

fn cfg() -> IvrConfig {
    IvrConfig {
        digit_timeout_ms: 3000,
        max_retries: 2,
        ..IvrConfig::default()
    }
}

/// An engine with one call "c" in `main`, and the clock.
struct Walk {
    e: Engine,
    now: Now,
}

impl Walk {
    fn new() -> Walk {
        let now = Now::virtual_start();
        let mut e = Engine::new(&cfg(), demo());
        e.start(now, "c", "main").unwrap();
        Walk { e, now }
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.e.poll_output()).collect()
    }

    /// The one output expected now: a Play, whose prompt and token it gives.
    fn played(&mut self) -> (Prompt, u64) {
        match self.outputs().as_slice() {
            [Output::Play { prompt, token, .. }] => (prompt.clone(), *token),
            other => panic!("expected one Play, got {other:?}"),
        }
    }

    /// Expects `prompt` to be played, and plays it to its end.
    fn hears(&mut self, prompt: Prompt) {
        let (p, t) = self.played();
        assert_eq!(p, prompt);
        self.finish(t);
    }

    /// Plays the current prompt to its end.
    fn finish(&mut self, token: u64) {
        self.e.prompt_done(self.now, "c", token);
    }

    fn digit(&mut self, d: char) {
        self.e.handle_digit(self.now, "c", d);
    }

    /// Moves the clock to the next timer and fires it.
    fn wait_timer(&mut self) -> Duration {
        let at = self.e.poll_timeout().expect("a timer");
        let waited = at - self.now.mono;
        self.now = self.now.at(at);
        self.e.handle_timeout(self.now);
        waited
    }
}

fn text(s: &str) -> Prompt {
    Prompt::Text(s.into())
}

fn main_prompt() -> Prompt {
    Prompt::Cached(1)
}

#[test]
fn welcome_then_digit_transfers() {
    let mut w = Walk::new();
    w.hears(main_prompt());
    assert!(w.outputs().is_empty());
    w.now = w.now.after(Duration::from_millis(1200));
    w.digit('1');
    assert_eq!(
        w.outputs(),
        vec![Output::Transfer {
            call: "c".into(),
            target: Target::Extension("6000".into())
        }]
    );
    // Handed off: digits and timers are ignored until the call ends.
    w.digit('2');
    assert!(w.outputs().is_empty());
    assert_eq!(w.e.poll_timeout(), None);
    let trail = w.e.end("c").unwrap();
    assert_eq!(trail.menus, ["main"]);
    assert_eq!(trail.digits, "1");
    assert!(matches!(trail.exit, Some(Output::Transfer { .. })));
    assert_eq!(w.e.calls(), 0);
}

#[test]
fn digit_during_the_welcome_stops_it_and_acts() {
    let mut w = Walk::new();
    let (_, old) = w.played();
    w.digit('3');
    let out = w.outputs();
    assert_eq!(out[0], Output::Stop { call: "c".into() });
    let Output::Play { prompt, token, .. } = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(*prompt, text("Billing."));
    // The replaced prompt's late end changes nothing.
    w.finish(old);
    assert_eq!(w.e.counters.stale_prompt_done, 1);
    assert_eq!(w.e.poll_timeout(), None);
    w.finish(*token);
    assert!(w.e.poll_timeout().is_some());
    w.digit('9');
    assert_eq!(w.played().0, main_prompt());
    w.digit('2');
    let out = w.outputs();
    assert_eq!(
        out.last(),
        Some(&Output::Queue {
            call: "c".into(),
            queue: "support".into()
        })
    );
    assert_eq!(w.e.end("c").unwrap().menus, ["main", "billing", "main"]);
}

#[test]
fn timeouts_replay_the_menu_then_goodbye_and_hangup() {
    let mut w = Walk::new();
    w.hears(main_prompt());
    for _ in 0..2 {
        assert_eq!(w.wait_timer(), Duration::from_secs(3));
        w.hears(text("Sorry, I did not hear a choice."));
        w.hears(main_prompt());
    }
    w.wait_timer();
    let (p, t) = w.played();
    assert_eq!(p, text("Goodbye."));
    // Digits during goodbye do nothing.
    w.digit('1');
    assert!(w.outputs().is_empty());
    w.finish(t);
    assert_eq!(w.outputs(), vec![Output::Hangup { call: "c".into() }]);
    assert_eq!(w.e.counters.timeouts, 3);
}

#[test]
fn invalid_digits_count_per_menu_and_star_repeats() {
    let mut w = Walk::new();
    w.hears(main_prompt());
    w.digit('7');
    w.hears(text("Sorry, that is not a valid choice."));
    w.hears(main_prompt());
    // `*` repeats without counting as a miss.
    w.digit('*');
    assert_eq!(w.played().0, main_prompt());
    w.digit('7');
    let out = w.outputs();
    assert_eq!(out[0], Output::Stop { call: "c".into() });
    // A new menu counts anew: two more misses there are still allowed.
    w.digit('3');
    let out2 = w.outputs();
    assert!(
        matches!(&out2[..], [Output::Stop { .. }, Output::Play { prompt, .. }] if *prompt == text("Billing.")),
        "{out:?} {out2:?}"
    );
    w.digit('5');
    w.digit('5');
    let out = w.outputs();
    assert!(
        out.iter()
            .all(|o| !matches!(o, Output::Play { prompt, .. } if *prompt == text("Goodbye."))),
        "{out:?}"
    );
    w.digit('5');
    let out = w.outputs();
    assert!(matches!(out.last(), Some(Output::Play { prompt, .. }) if *prompt == text("Goodbye.")));
    assert_eq!(w.e.end("c").unwrap().digits, "7*73555");
}

#[test]
fn play_option_then_the_menu_again() {
    let mut w = Walk::new();
    w.hears(main_prompt());
    w.digit('4');
    w.hears(text("Open nine to five."));
    assert_eq!(w.played().0, main_prompt());
    w.digit('#');
    assert_eq!(
        w.outputs(),
        vec![
            Output::Stop { call: "c".into() },
            Output::Hangup { call: "c".into() }
        ]
    );
}

#[test]
fn many_calls_keep_their_own_timers() {
    let now = Now::virtual_start();
    let mut e = Engine::new(&cfg(), demo());
    for i in 0..3u64 {
        let call = format!("c{i}");
        e.start(now, &call, "main").unwrap();
        let Some(Output::Play { token, .. }) = e.poll_output() else {
            panic!()
        };
        e.prompt_done(now.after(Duration::from_secs(i)), &call, token);
    }
    assert_eq!(e.poll_timeout(), Some(now.mono + Duration::from_secs(3)));
    e.handle_digit(now, "c0", '1');
    while e.poll_output().is_some() {}
    // c0 answered: the next timer is c1's.
    assert_eq!(e.poll_timeout(), Some(now.mono + Duration::from_secs(4)));
    e.handle_timeout(now.after(Duration::from_secs(5)));
    let timed_out: Vec<String> = std::iter::from_fn(|| e.poll_output())
        .map(|o| match o {
            Output::Play { call, .. } => call,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(timed_out, ["c1", "c2"]);
    assert_eq!(
        e.start(now, "c1", "main"),
        Err(IvrError::AlreadyIn("c1".into()))
    );
    assert_eq!(
        e.start(now, "x", "nowhere"),
        Err(IvrError::UnknownMenu("nowhere".into()))
    );
    e.handle_digit(now, "ghost", '1');
    assert_eq!(e.counters.unknown_call, 1);
}

#[test]
fn a_reload_applies_at_the_next_menu() {
    let mut w = Walk::new();
    w.hears(main_prompt());
    let (menus, _) = Menus::from_rows(
        vec![menu("main", "New main."), menu("billing", "New billing.")],
        vec![option("main", "3", "menu", Some("billing"))],
    );
    w.e.set_menus(menus);
    // The call's menu is the old main, whose 3 now leads to the new billing.
    w.digit('3');
    w.hears(text("New billing."));
}

#[test]
fn a_menu_gone_since_it_was_read_is_an_invalid_choice() {
    let mut w = Walk::new();
    w.hears(main_prompt());
    let (menus, _) = Menus::from_rows(vec![menu("main", "New main.")], vec![]);
    w.e.set_menus(menus);
    // The old main's 3 leads to billing, which the reload took away.
    w.digit('3');
    w.hears(text("Sorry, that is not a valid choice."));
    assert_eq!(w.e.counters.invalid, 1);
    assert_eq!(w.played().0, main_prompt());
}

#[test]
fn bad_rows_are_left_out_and_named() {
    let (menus, problems) = Menus::from_rows(
        vec![menu("main", "Hi."), menu("empty", "  ")],
        vec![
            option("main", "1", "transfer", Some("sip:alice@192.0.2.1:5070")),
            option("main", "2", "transfer", Some("agent:bob")),
            option("main", "3", "transfer", Some("agent")),
            option("main", "4", "queue", None),
            option("main", "5", "dance", Some("x")),
            option("main", "12", "hangup", None),
            option("main", "6", "menu", Some("gone")),
            option("main", "7", "transfer", Some("not a number")),
            option("ghost", "1", "hangup", None),
            option("main", "8", "play", Some("prompt:")),
            option("main", "9", "play", Some("prompt:hello")),
        ],
    );
    let main = menus.get("main").unwrap();
    assert_eq!(
        main.options.get(&'1'),
        Some(&Action::Transfer(Target::Uri(
            "sip:alice@192.0.2.1:5070".into()
        )))
    );
    assert_eq!(
        main.options.get(&'2'),
        Some(&Action::Transfer(Target::Agent(Some("bob".into()))))
    );
    assert_eq!(
        main.options.get(&'3'),
        Some(&Action::Transfer(Target::Agent(None)))
    );
    assert_eq!(
        main.options.get(&'4'),
        Some(&Action::Queue("default".into()))
    );
    assert_eq!(main.options.len(), 4);
    assert_eq!(menus.len(), 1);
    let expect = [
        "ivr_menus \"empty\": welcome_message: prompt \"\": empty",
        "ivr_menu_options \"main\" digit \"5\": action_type \"dance\": expected menu, transfer, queue, play or hangup",
        "ivr_menu_options \"main\" digit \"12\": not one of 0-9, *, #, A-D",
        "ivr_menu_options \"main\" digit \"6\": goes to menu \"gone\", which does not exist",
        "ivr_menu_options \"main\" digit \"7\": transfer target \"not a number\": expected an extension, a sip: URI, `agent` or `agent:NAME`",
        "ivr_menu_options \"ghost\" digit \"1\": no such menu",
        "ivr_menu_options \"main\" digit \"8\": prompt \"prompt:\": no prompt id after `prompt:`",
        "ivr_menu_options \"main\" digit \"9\": prompt \"prompt:hello\": the prompt id after `prompt:` is not a number (the prompt cache's)",
    ];
    assert_eq!(problems, expect);
}

#[test]
fn config_names_bad_keys() {
    let bad = IvrConfig {
        url: "redis://x".into(),
        digit_timeout_ms: 0,
        goodbye_prompt: "prompt:".into(),
        ..IvrConfig::default()
    };
    let problems = bad.validate();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("ivr.url \"redis://x\""));
    assert!(problems[2].starts_with("ivr.goodbye_prompt"));
    assert!(IvrConfig::default().validate().is_empty());
}

/// `sql` run on its own connection, as an operator's edit would be.
async fn exec(url: &str, sql: &str) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
}

#[tokio::test]
async fn sqlite_store_seeds_the_demo_once_and_reads_edits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ivr.sqlite", dir.path().display());
    let store = MenuStore::connect(&url, true).await.unwrap();
    let (menus, problems) = store.load().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let main = menus.get("main").unwrap();
    assert_eq!(main.name, "Main menu");
    assert_eq!(
        main.options.get(&'3'),
        Some(&Action::Menu("billing".into()))
    );
    assert_eq!(main.options.get(&'#'), Some(&Action::Hangup));
    assert_eq!(menus.len(), 2);
    drop(store);
    // Connecting again seeds nothing more; an edit is read on the next load.
    let store = MenuStore::connect(&url, true).await.unwrap();
    exec(
        &url,
        "UPDATE ivr_menus SET welcome_message = 'prompt:42' WHERE menu_id = 'main'",
    )
    .await;
    exec(
        &url,
        "DELETE FROM ivr_menu_options WHERE menu_id = 'main' AND digit = '#'",
    )
    .await;
    let (menus, _) = store.load().await.unwrap();
    let main = menus.get("main").unwrap();
    assert_eq!(main.welcome, Prompt::Cached(42));
    assert_eq!(main.options.len(), 4);
    assert_eq!(menus.len(), 2);
}

#[tokio::test]
async fn no_seed_leaves_empty_tables_empty() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ivr.sqlite", dir.path().display());
    let store = MenuStore::connect(&url, false).await.unwrap();
    assert!(store.load().await.unwrap().0.is_empty());
    let err = MenuStore::connect("sqlite:///nonexistent-dir/x/ivr.sqlite", true)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("IVR database sqlite:///nonexistent-dir/x/ivr.sqlite: "),
        "{err}"
    );
}
