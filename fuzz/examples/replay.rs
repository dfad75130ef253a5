//! Replays inputs through a target, to triage what AFL++ saved or check a
//! fix: `cargo run -p tollgate-fuzz --example replay -- TARGET FILE...`.
//! Prints each file's outcome; exits non-zero if any input broke a property.

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: replay TARGET FILE...");
    let target = tollgate_fuzz::targets::find(&name)
        .unwrap_or_else(|| panic!("no fuzz target {name:?}; see fuzz/src/targets/mod.rs"));
    std::panic::set_hook(Box::new(|_| {}));
    let mut broken = 0;
    for path in args {
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        match tollgate_fuzz::timed(target, &input) {
            Ok(()) => println!("ok     {path}"),
            Err(why) => {
                broken += 1;
                println!("BROKEN {path}: {why}");
            }
        }
    }
    std::process::exit(if broken == 0 { 0 } else { 1 });
}
