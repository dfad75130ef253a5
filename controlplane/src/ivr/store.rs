//! Reads the IVR's menus from SQL (SQLite by default, PostgreSQL or
//! MariaDB/MySQL by URL, through sqlx's `Any` driver as the LCR does),
//! creating the tables when missing and seeding the demo menus into empty
//! ones; [`reload`] reads them again on a period, so edits take effect
//! without a restart (a call keeps the menu it is in until it moves).

use super::menu::{MenuRow, Menus, OptionRow};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("IVR database {url}: {source}")]
    Db { url: String, source: sqlx::Error },
}

/// The IVR database.
pub struct MenuStore {
    pool: AnyPool,
    url: String,
}

/// The statements of an SQL file, comments left out.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .collect()
}

impl MenuStore {
    /// Connects, creates the tables if missing, and seeds the demo menus
    /// into an empty `ivr_menus` when `seed_demo`.
    pub async fn connect(url: &str, seed_demo: bool) -> Result<MenuStore, StoreError> {
        let err = |source| StoreError::Db {
            url: url.into(),
            source,
        };
        sqlx::any::install_default_drivers();
        let full = match url.starts_with("sqlite:") && !url.contains("mode=") {
            true => format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' }),
            false => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .connect(&full)
            .await
            .map_err(err)?;
        for stmt in statements(include_str!("schema.sql")) {
            sqlx::query(&stmt).execute(&pool).await.map_err(err)?;
        }
        let store = MenuStore {
            pool,
            url: url.into(),
        };
        if seed_demo {
            store.seed_demo().await.map_err(err)?;
        }
        Ok(store)
    }

    async fn seed_demo(&self) -> Result<(), sqlx::Error> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM ivr_menus")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if n > 0 {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for stmt in statements(include_str!("demo.sql")) {
            sqlx::query(&stmt).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Reads both tables; rows left out are in the returned sentences.
    pub async fn load(&self) -> Result<(Menus, Vec<String>), StoreError> {
        let err = |source| StoreError::Db {
            url: self.url.clone(),
            source,
        };
        let menus = sqlx::query("SELECT menu_id, name, welcome_message FROM ivr_menus")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                Ok(MenuRow {
                    menu_id: r.try_get("menu_id")?,
                    name: r.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
                    welcome_message: r.try_get("welcome_message")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(err)?;
        let options =
            sqlx::query("SELECT menu_id, digit, action_type, action_value FROM ivr_menu_options")
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(|r| {
                    Ok(OptionRow {
                        menu_id: r.try_get("menu_id")?,
                        digit: r.try_get("digit")?,
                        action_type: r.try_get("action_type")?,
                        action_value: r.try_get("action_value")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(err)?;
        Ok(Menus::from_rows(menus, options))
    }
}

/// Loads the menus every `every` and hands each good read to `apply`;
/// a failed read keeps the last menus (logged once per failure streak),
/// and rows left out are logged when the set of them changes.
pub async fn reload(store: MenuStore, every: Duration, mut apply: impl FnMut(Menus)) {
    let mut last_problems: Option<Vec<String>> = None;
    let mut failing = false;
    loop {
        tokio::time::sleep(every).await;
        match store.load().await {
            Ok((menus, problems)) => {
                failing = false;
                if last_problems.as_ref() != Some(&problems) {
                    for p in &problems {
                        tracing::warn!(problem = %p, "IVR menu row left out");
                    }
                    tracing::info!(menus = menus.len(), "IVR menus reloaded");
                    last_problems = Some(problems);
                }
                apply(menus);
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "reading the IVR menus failed; keeping the last ones");
            }
            Err(_) => {}
        }
    }
}
