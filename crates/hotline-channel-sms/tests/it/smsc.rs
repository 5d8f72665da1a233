//! A test SMSC on loopback, built on the independent `rusmpp` codec (not on the channel's own): if the two
//! implementations disagree about a PDU, these tests fail. It accepts the ESME's bind, pushes `deliver_sm`s,
//! reads `submit_sm`s and answers them as told, and can drop the connection or send garbage.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{BindTransceiverResp, DeliverSm, SubmitSm, SubmitSmResp};
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, Npi, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// How long any single expectation may wait.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Smsc {
    listener: TcpListener,
}

impl Smsc {
    pub async fn start() -> Smsc {
        Smsc {
            listener: TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the test SMSC"),
        }
    }

    pub fn addr(&self) -> String {
        self.listener.local_addr().expect("addr").to_string()
    }

    /// Accepts the next connection and its `bind_transceiver` (checking the credentials), and answers it.
    pub async fn accept(&self) -> Conn {
        let (socket, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the ESME connects")
            .expect("accept");
        let mut conn = Conn {
            framed: Framed::new(socket, rusmpp::tokio_codec::CommandCodec::new()),
            sequence: 1000,
        };
        let bind = conn.recv().await;
        assert_eq!(
            bind.id(),
            CommandId::BindTransceiver,
            "the ESME binds as transceiver"
        );
        let Some(Pdu::BindTransceiver(b)) = bind.pdu() else {
            panic!("no bind body")
        };
        assert_eq!(b.system_id.as_str(), "hotline");
        assert_eq!(b.password.as_str(), "secret");
        let resp = BindTransceiverResp::builder()
            .system_id(COctetString::from_static_slice(b"testsmsc\0").expect("id"))
            .build();
        conn.send(Command::new(
            CommandStatus::EsmeRok,
            bind.sequence_number(),
            resp,
        ))
        .await;
        conn
    }
}

pub struct Conn {
    pub framed: Framed<TcpStream, rusmpp::tokio_codec::CommandCodec>,
    sequence: u32,
}

/// A `deliver_sm` from a citizen to the hotline.
pub fn deliver_sm(source: &str, data_coding: u8, esm_class: u8, short_message: &[u8]) -> DeliverSm {
    DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(COctetString::from_vec(format!("{source}\0").into_bytes()).expect("source"))
        .destination_addr(COctetString::from_static_slice(b"1022\0").expect("destination"))
        .esm_class(EsmClass::from(esm_class))
        .data_coding(DataCoding::from(data_coding))
        .short_message(OctetString::from_slice(short_message).expect("short message"))
        .build()
}

/// The SAR TLVs of a part.
pub fn sar(reference: u16, total: u8, seq: u8) -> Vec<MessageDeliveryRequestTlvValue> {
    vec![
        MessageDeliveryRequestTlvValue::SarMsgRefNum(reference),
        MessageDeliveryRequestTlvValue::SarTotalSegments(total),
        MessageDeliveryRequestTlvValue::SarSegmentSeqnum(seq),
    ]
}

/// UTF-16BE octets of a text.
pub fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect()
}

impl Conn {
    pub async fn send(&mut self, command: Command) {
        tokio::time::timeout(WAIT, self.framed.send(command))
            .await
            .expect("send in time")
            .expect("send");
    }

    /// The next command from the ESME.
    pub async fn recv(&mut self) -> Command {
        tokio::time::timeout(WAIT, self.framed.next())
            .await
            .expect("the ESME answers in time")
            .expect("the connection stays open")
            .expect("the ESME's PDU decodes with rusmpp")
    }

    /// Whether the ESME closes the connection within the wait (its keep-alives are skipped meanwhile).
    pub async fn closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(WAIT, self.framed.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence += 1;
        self.sequence
    }

    /// Sends a `deliver_sm` and returns its sequence number.
    pub async fn deliver(&mut self, sm: DeliverSm) -> u32 {
        let sequence = self.next_sequence();
        self.send(Command::new(CommandStatus::EsmeRok, sequence, sm))
            .await;
        sequence
    }

    /// Sends a `deliver_sm` and waits for its `deliver_sm_resp`, answering anything else the ESME sends meanwhile
    /// (its keep-alives).
    pub async fn deliver_and_wait(&mut self, sm: DeliverSm) -> CommandStatus {
        let sequence = self.deliver(sm).await;
        self.wait_deliver_resp(sequence).await
    }

    pub async fn wait_deliver_resp(&mut self, sequence: u32) -> CommandStatus {
        loop {
            let command = self.recv().await;
            match command.id() {
                CommandId::DeliverSmResp => {
                    assert_eq!(
                        command.sequence_number(),
                        sequence,
                        "deliver_sm_resp carries the deliver_sm's sequence number"
                    );
                    return command.status();
                }
                CommandId::EnquireLink => self.answer_enquire_link(&command).await,
                other => panic!("unexpected {other:?} while waiting for deliver_sm_resp"),
            }
        }
    }

    pub async fn answer_enquire_link(&mut self, command: &Command) {
        self.send(Command::new(
            CommandStatus::EsmeRok,
            command.sequence_number(),
            Pdu::EnquireLinkResp,
        ))
        .await;
    }

    /// The next `submit_sm` (keep-alives answered on the way).
    pub async fn next_submit(&mut self) -> (u32, SubmitSm) {
        loop {
            let command = self.recv().await;
            match (command.id(), command.pdu()) {
                (CommandId::SubmitSm, Some(Pdu::SubmitSm(sm))) => {
                    return (command.sequence_number(), sm.clone());
                }
                (CommandId::EnquireLink, _) => self.answer_enquire_link(&command).await,
                (other, _) => panic!("unexpected {other:?} while waiting for submit_sm"),
            }
        }
    }

    pub async fn answer_submit(&mut self, sequence: u32, status: CommandStatus, message_id: &str) {
        let id = COctetString::from_vec(format!("{message_id}\0").into_bytes()).expect("id");
        let resp = SubmitSmResp::builder().message_id(id).build();
        self.send(Command::new(status, sequence, resp)).await;
    }

    /// Writes raw bytes (garbage, an oversized header) past the codec.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        let socket = self.framed.get_mut();
        socket.write_all(bytes).await.expect("write raw");
        socket.flush().await.expect("flush");
    }
}
