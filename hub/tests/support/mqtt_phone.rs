//! A phone on MQTT, as a paho-like client behaves: Last Will `offline` and a retained
//! `online` on its presence topic, its lead topic and its grids' topics subscribed.

use std::time::Duration;

use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(15);

/// What the broker answered.
pub enum Control {
    Connected,
    Subscribed(Vec<String>),
    Published(String),
}

pub struct MqttPhone {
    pub lead: String,
    pub client: AsyncClient,
    frames: mpsc::UnboundedReceiver<(String, ServerFrame)>,
    control: mpsc::UnboundedReceiver<Control>,
    task: tokio::task::JoinHandle<()>,
}

pub struct PhoneOpts {
    pub clean: bool,
    pub keep_alive_s: u64,
    pub password: Option<String>,
}

impl Default for PhoneOpts {
    fn default() -> Self {
        Self {
            clean: true,
            keep_alive_s: 30,
            password: None,
        }
    }
}

impl MqttPhone {
    pub async fn connect(port: u16, lead: &str, opts: PhoneOpts) -> MqttPhone {
        let mut o = MqttOptions::new(format!("phone-{lead}"), "127.0.0.1", port);
        // rumqttc sizes its in-flight table by this (65,535 entries by default).
        o.set_outgoing_inflight_upper_limit(16);
        o.set_keep_alive(Duration::from_secs(opts.keep_alive_s))
            .set_clean_start(opts.clean)
            .set_last_will(LastWill::new(
                format!("gridcast/v1/presence/{lead}"),
                "offline",
                QoS::AtLeastOnce,
                true,
                None,
            ));
        if !opts.clean {
            o.set_session_expiry_interval(Some(3600));
        }
        if let Some(p) = opts.password {
            o.set_credentials(lead, p);
        }
        let (client, mut eventloop) = AsyncClient::new(o, 100);
        let (ftx, frames) = mpsc::unbounded_channel();
        let (ctx, control) = mpsc::unbounded_channel();
        let presence = client.clone();
        let me = lead.to_owned();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = presence
                            .publish(
                                format!("gridcast/v1/presence/{me}"),
                                QoS::AtLeastOnce,
                                true,
                                "online",
                            )
                            .await;
                        let _ = ctx.send(Control::Connected);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic).into_owned();
                        if let Ok(f) = serde_json::from_slice(&p.payload) {
                            let _ = ftx.send((topic, f));
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(s))) => {
                        let _ = ctx.send(Control::Subscribed(
                            s.return_codes.iter().map(|c| format!("{c:?}")).collect(),
                        ));
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let _ = ctx.send(Control::Published(format!("{:?}", a.reason)));
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    // Like paho's automatic reconnect.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let mut phone = MqttPhone {
            lead: lead.to_owned(),
            client,
            frames,
            control,
            task,
        };
        phone.until_connack().await;
        phone
    }

    pub async fn until_connack(&mut self) {
        loop {
            let c = tokio::time::timeout(WAIT, self.control.recv())
                .await
                .expect("connack in time")
                .unwrap();
            if matches!(c, Control::Connected) {
                return;
            }
        }
    }

    /// Subscribes (QoS 1) and returns the broker's answer per filter.
    pub async fn subscribe(&mut self, topic: &str) -> Vec<String> {
        self.client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            let c = tokio::time::timeout(WAIT, self.control.recv())
                .await
                .expect("suback in time")
                .unwrap();
            if let Control::Subscribed(codes) = c {
                return codes;
            }
        }
    }

    /// Subscribes to the lead's own topic and the given grids' topics.
    pub async fn subscribe_own(&mut self, grids: &[String]) {
        let lead = format!("gridcast/v1/lead/{}", self.lead);
        assert_eq!(self.subscribe(&lead).await, ["Success(AtLeastOnce)"]);
        for g in grids {
            let codes = self.subscribe(&format!("gridcast/v1/grid/{g}")).await;
            assert_eq!(codes, ["Success(AtLeastOnce)"]);
        }
    }

    /// Publishes raw bytes (QoS 1) on a topic and returns the broker's PUBACK reason.
    pub async fn publish_raw(&mut self, topic: &str, payload: Vec<u8>) -> String {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        loop {
            let c = tokio::time::timeout(WAIT, self.control.recv())
                .await
                .expect("puback in time")
                .unwrap();
            if let Control::Published(reason) = c {
                return reason;
            }
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        let up = format!("gridcast/v1/up/{}", self.lead);
        let reason = self
            .publish_raw(&up, serde_json::to_vec(frame).unwrap())
            .await;
        assert_eq!(reason, "Success", "broker took the frame");
    }

    pub async fn next(&mut self) -> (String, ServerFrame) {
        tokio::time::timeout(WAIT, self.frames.recv())
            .await
            .expect("a frame in time")
            .unwrap()
    }

    /// Sends `hello` and returns the frames up to `synced` (welcome first).
    pub async fn hello(&mut self, token: &str) -> Vec<ServerFrame> {
        self.send(&ClientFrame::Hello {
            token: token.into(),
            client: None,
        })
        .await;
        let mut out = Vec::new();
        loop {
            match self.next().await.1 {
                ServerFrame::Synced => return out,
                f => out.push(f),
            }
        }
    }

    /// Sends a frame with `ref` and waits for its `ok`/`error`.
    pub async fn request(&mut self, frame: &ClientFrame) -> ServerFrame {
        let want = frame.reference().unwrap().to_owned();
        self.send(frame).await;
        loop {
            match self.next().await.1 {
                f @ ServerFrame::Ok { .. } if matches!(&f, ServerFrame::Ok { reference } if *reference == want) =>
                {
                    return f;
                }
                f @ ServerFrame::Error { .. } if matches!(&f, ServerFrame::Error { reference: Some(r), .. } if *r == want) =>
                {
                    return f;
                }
                _ => {}
            }
        }
    }

    /// The next incident frame with this id (from the grid or the lead topic).
    pub async fn incident(&mut self, id: &str) -> (String, ServerFrame) {
        loop {
            let (topic, f) = self.next().await;
            if matches!(&f, ServerFrame::Incident { incident, .. } if incident.id == id) {
                return (topic, f);
            }
        }
    }

    /// Goes away without DISCONNECT: the socket just closes (the broker fires the will).
    pub fn drop_unclean(self) {
        self.task.abort();
    }

    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
    }
}
