/* A Nexmark event as Flink POJOs (serialized by Flink's PojoSerializer between tasks): exactly
 * one of person, auction, bid is set, as type says. Field names are the reference's (and those
 * of weir's `nexmark.so --query events` JSON lines, examples/README.md); json() writes that line.
 * Threading: plain data, owned by whoever holds it. */
package weir.bench;

public class Event {
    public int type;
    public long dateTime;
    public Person person;
    public Auction auction;
    public Bid bid;

    public Event() {}

    /** The JSON line of `nexmark.so --query events` (same keys, order and spacing). */
    public String json() {
        StringBuilder s = new StringBuilder(256);
        switch (type) {
        case Gen.PERSON:
            s.append("{\"type\":\"person\"");
            Json.num(s, "id", person.id);
            Json.str(s, "name", person.name);
            Json.str(s, "emailAddress", person.emailAddress);
            Json.str(s, "creditCard", person.creditCard);
            Json.str(s, "city", person.city);
            Json.str(s, "state", person.state);
            Json.num(s, "dateTime", person.dateTime);
            Json.str(s, "extra", person.extra);
            break;
        case Gen.AUCTION:
            s.append("{\"type\":\"auction\"");
            Json.num(s, "id", auction.id);
            Json.str(s, "itemName", auction.itemName);
            Json.str(s, "description", auction.description);
            Json.num(s, "initialBid", auction.initialBid);
            Json.num(s, "reserve", auction.reserve);
            Json.num(s, "dateTime", auction.dateTime);
            Json.num(s, "expires", auction.expires);
            Json.num(s, "seller", auction.seller);
            Json.num(s, "category", auction.category);
            Json.str(s, "extra", auction.extra);
            break;
        default:
            s.append("{\"type\":\"bid\"");
            Json.num(s, "auction", bid.auction);
            Json.num(s, "bidder", bid.bidder);
            Json.num(s, "price", bid.price);
            Json.str(s, "channel", bid.channel);
            Json.str(s, "url", bid.url);
            Json.num(s, "dateTime", bid.dateTime);
            Json.str(s, "extra", bid.extra);
            break;
        }
        return s.append('}').toString();
    }
}
