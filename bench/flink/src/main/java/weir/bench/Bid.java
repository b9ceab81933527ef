/* A Nexmark bid (POJO; see Event). */
package weir.bench;

public class Bid {
    public long auction, bidder, price, dateTime;
    public String channel, url, extra;

    public Bid() {}
}
