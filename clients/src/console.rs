//! The command-center HTTP API.

use gridcast_protocol::api::{
    CreateIncident, CreatedIncident, ErrorBody, IncidentDetail, IncidentList, Presence,
    RecipientList, Timeline,
};
use serde::de::DeserializeOwned;

use crate::ClientError;

/// A client for one hub and one operator token.
#[derive(Clone)]
pub struct ConsoleClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ConsoleClient {
    /// A client for `base` (`http://host:port`) with an operator token.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Protocol(e.to_string()));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => {
                let mut message = b.error.message;
                for p in b.error.problems {
                    message.push_str("\n  ");
                    message.push_str(&p);
                }
                Err(ClientError::Hub {
                    status,
                    code: b.error.code.as_str().into(),
                    message,
                })
            }
            Err(_) => Err(ClientError::Hub {
                status,
                code: "unknown".into(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            }),
        }
    }

    /// GET a path as text with an `Accept` header (the after-action report as CSV).
    pub async fn get_text(&self, path: &str, accept: &str) -> Result<String, ClientError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await?;
        if resp.status().is_success() {
            return Ok(resp.text().await?);
        }
        Self::decode::<serde_json::Value>(resp)
            .await
            .map(|v| v.to_string())
    }

    /// GET a path and decode the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Self::decode(resp).await
    }

    /// Sends a JSON body with `method` and decodes the answer.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        Self::decode(resp).await
    }

    /// `POST /v1/incidents`.
    pub async fn activate(&self, req: &CreateIncident) -> Result<CreatedIncident, ClientError> {
        self.send_json(reqwest::Method::POST, "/v1/incidents", req)
            .await
    }

    /// `GET /v1/incidents/{id}`.
    pub async fn incident(&self, id: &str) -> Result<IncidentDetail, ClientError> {
        self.get(&format!("/v1/incidents/{id}")).await
    }

    /// `GET /v1/incidents?state=…`.
    pub async fn incidents(&self, state: Option<&str>) -> Result<IncidentList, ClientError> {
        match state {
            Some(s) => self.get(&format!("/v1/incidents?state={s}")).await,
            None => self.get("/v1/incidents").await,
        }
    }

    /// `GET /v1/incidents/{id}/recipients?status=…`.
    pub async fn recipients(
        &self,
        id: &str,
        status: Option<&str>,
    ) -> Result<RecipientList, ClientError> {
        let q = status.map(|s| format!("?status={s}")).unwrap_or_default();
        self.get(&format!("/v1/incidents/{id}/recipients{q}")).await
    }

    /// `GET /v1/incidents/{id}/timeline`.
    pub async fn timeline(&self, id: &str) -> Result<Timeline, ClientError> {
        self.get(&format!("/v1/incidents/{id}/timeline")).await
    }

    /// `GET /v1/presence?prefix=…`.
    pub async fn presence(&self, prefix: &str, leads: bool) -> Result<Presence, ClientError> {
        self.get(&format!("/v1/presence?prefix={prefix}&leads={leads}"))
            .await
    }
}
