//! The registry in force and the MQTT leads whose hello was good, in Redis.

use super::*;

impl RedisStore {
    /// See [`Store::save_registry`].
    pub(super) async fn write_registry(&self, doc: &RegistryDoc) -> Result<(), StoreError> {
        let json = serde_json::to_string(doc).map_err(io)?;
        let mut c = self.connection();
        // The cluster announces it, sealed (`Cluster::announce_registry`).
        self.seen(
            redis::pipe()
                .atomic()
                .set(REGISTRY, json)
                .ignore()
                .incr(REGISTRY_VER, 1)
                .ignore()
                .query_async::<()>(&mut c)
                .await,
        )
    }

    /// See [`Store::load_registry`].
    pub(super) async fn read_registry(&self) -> Result<Option<RegistryDoc>, StoreError> {
        let mut c = self.connection();
        let json: Option<String> = self.seen(c.get(REGISTRY).await)?;
        json.map(|j| parse(&j)).transpose()
    }

    /// See [`Store::remember_mqtt_lead`].
    pub(super) async fn write_mqtt_lead(
        &self,
        lead: &str,
        exp: u64,
        jti: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut c = self.connection();
        let v = crate::store::MqttLead {
            exp,
            jti: jti.map(str::to_owned),
        };
        let json = serde_json::to_string(&v).map_err(io)?;
        // Redis forgets it when the token expires (EXAT).
        let set = redis::cmd("SET")
            .arg(format!("{MQTT_LEAD}{lead}"))
            .arg(json)
            .arg("EXAT")
            .arg(exp)
            .query_async::<()>(&mut c)
            .await;
        self.seen(set)
    }

    /// See [`Store::mqtt_lead`].
    pub(super) async fn read_mqtt_lead(
        &self,
        lead: &str,
    ) -> Result<Option<crate::store::MqttLead>, StoreError> {
        let mut c = self.connection();
        let v: Option<String> = self.seen(c.get(format!("{MQTT_LEAD}{lead}")).await)?;
        let now = crate::now_ms() / 1000;
        Ok(v.map(|j| parse::<crate::store::MqttLead>(&j))
            .transpose()?
            .filter(|l| l.exp > now))
    }
}

impl RedisStore {
    /// The registry stored and its version, read together.
    pub async fn load_registry_versioned(&self) -> Result<(u64, Option<RegistryDoc>), StoreError> {
        let mut c = self.connection();
        let (ver, json): (Option<u64>, Option<String>) = self.seen(
            redis::pipe()
                .atomic()
                .get(REGISTRY_VER)
                .get(REGISTRY)
                .query_async(&mut c)
                .await,
        )?;
        Ok((ver.unwrap_or(0), json.map(|j| parse(&j)).transpose()?))
    }
}
