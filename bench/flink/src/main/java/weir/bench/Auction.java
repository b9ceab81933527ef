/* A Nexmark auction (POJO; see Event). */
package weir.bench;

public class Auction {
    public long id, initialBid, reserve, dateTime, expires, seller, category;
    public String itemName, description, extra;

    public Auction() {}
}
