/* A Nexmark person (POJO; see Event). */
package weir.bench;

public class Person {
    public long id;
    public String name, emailAddress, creditCard, city, state, extra;
    public long dateTime;

    public Person() {}
}
