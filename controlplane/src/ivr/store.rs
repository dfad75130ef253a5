//! Reads the IVR's menus from SQL (SQLite by default, PostgreSQL or
//! MariaDB/MySQL by URL, through sqlx's `Any` driver as the LCR does),
//! creating the tables when missing and seeding the demo menus into empty
//! ones. Each [`MenuStore::load`] reads them anew, so edits take effect
//! without a restart (a call keeps the menu it is in until it moves).

use super::menu::{MenuRow, Menus, OptionRow};
use sqlx::any::AnyPoolOptions;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

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

/// A text column. MariaDB's TEXT reaches sqlx's `Any` driver as a BLOB
/// (a CAST to CHAR too), which it will not decode as a string: that is
/// read as bytes, then as UTF-8 (a bad byte becomes U+FFFD, not an error).
fn text(r: &AnyRow, col: &str) -> Result<Option<String>, sqlx::Error> {
    match r.try_get::<Option<String>, _>(col) {
        Ok(v) => Ok(v),
        Err(_) => Ok(r
            .try_get::<Option<Vec<u8>>, _>(col)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())),
    }
}

/// A text column that must not be NULL.
fn required(r: &AnyRow, col: &str) -> Result<String, sqlx::Error> {
    text(r, col)?.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: col.into(),
        source: "NULL where a value is required".into(),
    })
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
        let menus = self
            .rows(
                "SELECT menu_id, name, welcome_message FROM ivr_menus",
                |r| {
                    Ok(MenuRow {
                        menu_id: required(r, "menu_id")?,
                        name: text(r, "name")?.unwrap_or_default(),
                        welcome_message: required(r, "welcome_message")?,
                    })
                },
            )
            .await
            .map_err(err)?;
        let sql = "SELECT menu_id, digit, action_type, action_value FROM ivr_menu_options";
        let options = self
            .rows(sql, |r| {
                Ok(OptionRow {
                    menu_id: required(r, "menu_id")?,
                    digit: required(r, "digit")?,
                    action_type: required(r, "action_type")?,
                    action_value: text(r, "action_value")?,
                })
            })
            .await
            .map_err(err)?;
        Ok(Menus::from_rows(menus, options))
    }

    async fn rows<T>(
        &self,
        sql: &str,
        each: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(each).collect()
    }
}

/// The menus `store` holds now; each row left out is logged, naming its
/// menu and fault.
async fn read_logged(store: &MenuStore) -> Result<Menus, StoreError> {
    let (menus, left_out) = store.load().await?;
    for problem in &left_out {
        tracing::warn!(problem, "IVR row left out");
    }
    Ok(menus)
}

/// An engine over the menus `cfg.url` holds now, and the store to read
/// them again from.
pub async fn load_engine(
    cfg: &super::config::IvrConfig,
) -> Result<(super::engine::Engine, MenuStore), StoreError> {
    let store = MenuStore::connect(&cfg.url, cfg.seed_demo).await?;
    let menus = read_logged(&store).await?;
    tracing::info!(menus = menus.len(), url = cfg.url, "IVR menus loaded");
    Ok((super::engine::Engine::new(cfg, menus), store))
}

/// Reads the menus anew every `every`, handing each read to `apply`; a
/// failed read keeps the last menus (and is logged). Runs until aborted.
pub async fn reload(store: MenuStore, every: std::time::Duration, apply: impl Fn(Menus)) {
    let mut count = None;
    loop {
        tokio::time::sleep(every).await;
        match read_logged(&store).await {
            Ok(menus) => {
                if count.replace(menus.len()) != Some(menus.len()) {
                    tracing::info!(menus = menus.len(), "IVR menus reloaded");
                }
                apply(menus);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the IVR menus failed; keeping the last ones")
            }
        }
    }
}
