//! The client side of a connection: dial, handshake, read the catalog, open devices.

use std::sync::Arc;

use crate::datagrams::{DatagramEnd, DatagramRouter};
use crate::frames::FrameRouter;
use std::time::Duration;

use iroh::endpoint::{ConnectionError, VarInt};
use iroh::Endpoint;
use thiserror::Error;
use xoq_wire::{
    Access, Delivery, DeviceInfo, ErrorCode, Hello, Message, Peer, Welcome, ALPN, LATEST_VERSION,
    MAX_VERSION, MIN_VERSION,
};

use crate::copies;
use crate::framed::{MessageReader, MessageWriter, StreamError};
use crate::ticket::Ticket;

/// Why a connection or an open did not succeed.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("cannot reach server {id}: {reason}")]
    Unreachable { id: String, reason: String },
    #[error("server refused this client ({code}): {text}")]
    Refused { code: ErrorCode, text: String },
    #[error("server broke the protocol: {0}")]
    Protocol(String),
    #[error("link failed: {0}")]
    Link(#[from] StreamError),
    #[error("link failed: {0}")]
    Connection(#[from] ConnectionError),
}

impl ConnectError {
    /// True when retrying cannot help (refusals); false for network trouble.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnectError::Refused { .. } | ConnectError::Protocol(_)
        )
    }
}

/// An established, welcomed connection.
pub struct ClientSession {
    pub conn: iroh::endpoint::Connection,
    pub welcome: Welcome,
    /// Camera frames of this connection, by device.
    pub frames: Arc<FrameRouter>,
    /// Audio packets of this connection, by device.
    pub datagrams: Arc<DatagramRouter>,
    // Kept open for the life of the session: the server ends the session when it closes.
    _control: (MessageWriter, MessageReader),
}

/// An opened device stream.
pub struct DeviceStream {
    pub info: DeviceInfo,
    pub reader: MessageReader,
    pub writer: MessageWriter,
    /// How its messages are delivered: what was asked, unless the server is too old for it.
    pub delivery: Delivery,
}

/// Dials the server in `ticket`, says hello and waits for the catalog.
pub async fn connect(
    endpoint: &Endpoint,
    ticket: &Ticket,
    client_name: &str,
    timeout: Duration,
) -> Result<ClientSession, ConnectError> {
    let fut = connect_inner(endpoint, ticket, client_name);
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Unreachable {
            id: ticket.id.fmt_short().to_string(),
            reason: format!("no answer within {timeout:?}"),
        }),
    }
}

async fn connect_inner(
    endpoint: &Endpoint,
    ticket: &Ticket,
    client_name: &str,
) -> Result<ClientSession, ConnectError> {
    let conn = endpoint
        .connect(ticket.endpoint_addr(), ALPN)
        .await
        .map_err(|e| ConnectError::Unreachable {
            id: ticket.id.fmt_short().to_string(),
            reason: e.to_string(),
        })?;
    // An unknown key is refused right after the TLS handshake by a close with the reason: it
    // may arrive as any of the errors below.
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| refusal_from_close(&conn, e.into()))?;
    let mut writer = MessageWriter::new(send);
    let mut reader = MessageReader::new(recv, Peer::Server);
    let hello = Hello {
        min_version: MIN_VERSION,
        max_version: MAX_VERSION,
        client_name: client_name.to_string(),
    };
    writer
        .send(&Message::Hello(hello))
        .await
        .map_err(|e| refusal_from_close(&conn, e.into()))?;
    match reader.next().await {
        Ok(Some(Message::Welcome(welcome)))
            if !(MIN_VERSION..=MAX_VERSION).contains(&welcome.version) =>
        {
            // The server must pick a version this mounter offered; anything else is its doing.
            conn.close(
                VarInt::from_u32(crate::CLOSE_PROTOCOL),
                b"unsupported protocol version",
            );
            Err(ConnectError::Protocol(format!(
                "the server's catalog is refused: it speaks protocol version {}, this mounter \
                 offered {MIN_VERSION} to {MAX_VERSION}; install matching versions of xoq-server \
                 and xoq-mount",
                welcome.version
            )))
        }
        Ok(Some(Message::Welcome(welcome))) => {
            let frames = Arc::new(FrameRouter::default());
            tokio::spawn(frames.clone().run(conn.clone()));
            let datagrams = Arc::new(DatagramRouter::default());
            let (router, c) = (datagrams.clone(), conn.clone());
            tokio::spawn(async move {
                if let DatagramEnd::Malformed(why) = router.run(&c).await {
                    tracing::warn!("server sent a malformed datagram: {why}; closing the link");
                    c.close(VarInt::from_u32(crate::CLOSE_PROTOCOL), why.as_bytes());
                }
            });
            Ok(ClientSession {
                conn,
                welcome,
                frames,
                datagrams,
                _control: (writer, reader),
            })
        }
        Ok(Some(Message::Refused(r))) => Err(ConnectError::Refused {
            code: r.code,
            text: r.text,
        }),
        Ok(Some(m)) => Err(ConnectError::Protocol(format!(
            "expected Welcome, got {}",
            m.name()
        ))),
        Ok(None) => Err(ConnectError::Protocol(
            "server closed the control stream".into(),
        )),
        // The ticket pins the server's key, so a catalog that does not decode (a name that
        // could become a path, too many devices) is that server's doing, not the network's:
        // refused for good, with the reason, and nothing is mounted.
        Err(StreamError::Wire(e)) => {
            conn.close(
                VarInt::from_u32(crate::CLOSE_PROTOCOL),
                b"malformed catalog",
            );
            Err(ConnectError::Protocol(format!(
                "the server's catalog is refused: {e}"
            )))
        }
        Err(e) => Err(refusal_from_close(&conn, e.into())),
    }
}

/// If the server closed the connection with a refusal, report that instead of a link error;
/// a server at its connection limit is a link error that says so (retried).
fn refusal_from_close(conn: &iroh::endpoint::Connection, fallback: ConnectError) -> ConnectError {
    if let Some(ConnectionError::ApplicationClosed(close)) = conn.close_reason() {
        // The reason is the peer's bytes: shown, never trusted to be short or printable.
        let text: String = String::from_utf8_lossy(&close.reason)
            .chars()
            .take(xoq_wire::limits::MAX_TEXT)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if close.error_code == VarInt::from_u32(crate::CLOSE_REFUSED) {
            return ConnectError::Refused {
                code: ErrorCode::Unauthorized,
                text,
            };
        }
        if close.error_code == VarInt::from_u32(crate::CLOSE_FULL) {
            return ConnectError::Unreachable {
                id: conn.remote_id().fmt_short().to_string(),
                reason: text,
            };
        }
    }
    fallback
}

impl ClientSession {
    /// Opens one device on its own stream.
    pub async fn open_device(
        &self,
        name: &str,
        access: Access,
    ) -> Result<DeviceStream, ConnectError> {
        self.open_device_as(name, access, 0).await
    }

    /// Opens one device on its own stream, naming this client's writer of a serial port
    /// (`writer`, never 0, the same across reconnections: see `Message::Open`).
    pub async fn open_device_as(
        &self,
        name: &str,
        access: Access,
        writer_token: u64,
    ) -> Result<DeviceStream, ConnectError> {
        self.open_device_with(name, access, writer_token, Delivery::Ordered)
            .await
    }

    /// Opens one device on its own stream, with a writer token (see [`Self::open_device_as`])
    /// and the delivery asked of both ends (`Delivery::Latest` for a CAN bus's cyclic control
    /// traffic over a lossy link: `xoq_wire::latest`). A server older than protocol version 4
    /// cannot deliver latest-wins; the bus is then opened ordered, and a warning says so.
    pub async fn open_device_with(
        &self,
        name: &str,
        access: Access,
        writer_token: u64,
        delivery: Delivery,
    ) -> Result<DeviceStream, ConnectError> {
        let version = self.welcome.version;
        let delivery = if delivery == Delivery::Latest && version < LATEST_VERSION {
            tracing::warn!(
                device = name,
                "the server speaks protocol version {version}, which has no latest-wins \
                 delivery (version {LATEST_VERSION}); the bus is delivered in order: update \
                 xoq-server on the robot"
            );
            Delivery::Ordered
        } else {
            delivery
        };
        let (send, recv) = self.conn.open_bi().await?;
        let mut writer = MessageWriter::new(send);
        let mut reader = MessageReader::new(recv, Peer::Server);
        writer
            .send(&Message::Open {
                device: name.to_string(),
                access,
                writer: writer_token,
                delivery,
            })
            .await?;
        match reader.next().await? {
            Some(Message::Opened(info)) => {
                let (conn, router) = (&self.conn, &self.datagrams);
                let (w, r) = (&mut writer, &mut reader);
                copies::attach(version, info.kind, delivery, conn, router, w, r);
                Ok(DeviceStream {
                    info,
                    reader,
                    writer,
                    delivery,
                })
            }
            Some(Message::Error { code, text }) => Err(ConnectError::Refused { code, text }),
            Some(m) => Err(ConnectError::Protocol(format!(
                "expected Opened, got {}",
                m.name()
            ))),
            None => Err(ConnectError::Protocol(
                "server closed the device stream".into(),
            )),
        }
    }

    /// What became of this connection's stream copies.
    pub fn copy_stats(&self) -> &crate::copies::CopyStats {
        &self.datagrams.copy_stats
    }

    /// Camera frames' tail probes received on this connection (`Message::Probe`).
    pub fn probes(&self) -> u64 {
        self.datagrams
            .probes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Current round-trip time estimate of the link, if known.
    pub fn rtt(&self) -> Option<Duration> {
        self.conn.paths().iter().map(|p| p.rtt()).min()
    }

    /// Closes the connection politely.
    pub fn close(&self) {
        self.conn
            .close(VarInt::from_u32(crate::CLOSE_NORMAL), b"client closing");
    }
}
