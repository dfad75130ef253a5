//! Finds the host's DPDK with pkg-config (`libdpdk`, 22.11 or later),
//! generates bindings for the control-path API with bindgen, and compiles
//! the C shim that exports the inline fast-path functions.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=src/shim.h");
    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "DPDK not found by pkg-config ({e}).\n\
                 Install it (Debian: `apt-get install libdpdk-dev pkg-config libclang-dev`, \
                 or scripts/setup.sh), or build without the `dpdk` feature."
            )
        });

    // The cflags pkg-config gives (includes, `-include rte_config.h`, -march).
    let cflags: Vec<String> = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_else(|| {
            lib.include_paths
                .iter()
                .map(|p| format!("-I{}", p.display()))
                .collect()
        });

    let mut shim = cc::Build::new();
    shim.file("src/shim.c").opt_level(2).warnings(true);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("tollgate_dpdk_shim");

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    bindgen::Builder::default()
        .header("src/shim.h")
        .clang_args(&cflags)
        .allowlist_function("rte_eal_init|rte_eal_cleanup|rte_strerror")
        .allowlist_function("rte_thread_register|rte_thread_unregister|rte_socket_id")
        .allowlist_function(
            "rte_eth_dev_count_avail|rte_eth_dev_get_port_by_name|rte_eth_dev_get_name_by_port",
        )
        .allowlist_function("rte_eth_dev_configure|rte_eth_rx_queue_setup|rte_eth_tx_queue_setup")
        .allowlist_function(
            "rte_eth_dev_start|rte_eth_dev_stop|rte_eth_dev_close|rte_eth_dev_info_get",
        )
        .allowlist_function(
            "rte_eth_macaddr_get|rte_eth_promiscuous_enable|rte_eth_allmulticast_enable",
        )
        .allowlist_function(
            "rte_eth_stats_get|rte_eth_dev_socket_id|rte_eth_dev_set_mtu|rte_eth_link_get_nowait",
        )
        .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free|rte_pktmbuf_free_bulk")
        .allowlist_function("tg_.*")
        .allowlist_var(
            "RTE_MBUF_DEFAULT_BUF_SIZE|RTE_PKTMBUF_HEADROOM|SOCKET_ID_ANY|RTE_ETH_NAME_MAX_LEN",
        )
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen over DPDK's headers (needs libclang: Debian `libclang-dev`)")
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}
